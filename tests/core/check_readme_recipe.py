"""The recipe table in README (between its `recipe` markers) must state the defaults that
`dma_orchestrate --print-config` prints. Usage: check_readme_recipe.py README DMA_ORCHESTRATE"""
import configparser
import re
import subprocess
import sys


def main(readme, program):
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"<!-- recipe:.*?-->\n(.*?)<!-- end recipe -->", text, re.S)
    if not m:
        print(f"check_readme_recipe: {readme} has no recipe table between its markers")
        return 1
    rows = re.findall(r"^\| `([a-z_]+)\.([a-z_]+)` \| `([^`]*)` \|", m.group(1), re.M)
    if len(rows) < 5:
        print(f"check_readme_recipe: only {len(rows)} rows read from the recipe table")
        return 1
    out = subprocess.run([program, "--print-config"], capture_output=True, text=True, check=True).stdout
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(out)
    wrong = []
    for section, key, value in rows:
        actual = config.get(section, key, fallback=None)
        if actual != value:
            wrong.append(f"{section}.{key}: README says {value!r}, the default is {actual!r}")
    if wrong:
        print("check_readme_recipe: README's recipe differs from the defaults: " + "; ".join(wrong))
        return 1
    print(f"ok: {len(rows)} recipe keys match the defaults")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
