#!/usr/bin/python3
"""Writes a Megatron-LM indexed dataset (<prefix>.bin + <prefix>.idx) of random documents,
following Megatron's MMapIndexedDataset layout, and <prefix>.json with the documents' tokens
(one list per document), so a reader can be checked against a writer that shares no code with it.

.idx layout (little-endian): magic b"MMIDIDX\\x00\\x00", version u64 (1), dtype code u8,
sequence count u64, document-index count u64, sequence lengths int32[S], sequence byte
offsets into .bin int64[S], document index int64[documents + 1] (0, ..., S).

usage: write_megatron.py PREFIX --dtype uint16|int32|uint8|int64 --vocab N --documents N --seed N
"""
import argparse
import json
import struct

import numpy as np

DTYPE_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prefix")
    ap.add_argument("--dtype", default="uint16", choices=sorted(DTYPE_CODES))
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--documents", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    dtype = np.dtype(a.dtype)
    documents, sequences = [], []  # a document is 1 to 3 sequences (sentences, as with --split-sentences)
    doc_index = [0]
    for _ in range(a.documents):
        doc = []
        for _ in range(int(rng.integers(1, 4))):
            seq = rng.integers(0, a.vocab, size=int(rng.integers(1, 60)))
            sequences.append(seq.astype(dtype))
            doc.extend(int(t) for t in seq)
        documents.append(doc)
        doc_index.append(len(sequences))
    with open(a.prefix + ".bin", "wb") as f:
        for seq in sequences:
            f.write(seq.tobytes())
    lengths = np.array([len(s) for s in sequences], dtype=np.int32)
    pointers = np.zeros(len(sequences), dtype=np.int64)
    pointers[1:] = np.cumsum(lengths[:-1].astype(np.int64) * dtype.itemsize)
    with open(a.prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", DTYPE_CODES[a.dtype]))
        f.write(struct.pack("<Q", len(sequences)))
        f.write(struct.pack("<Q", len(doc_index)))
        f.write(lengths.astype("<i4").tobytes(order="C"))
        f.write(pointers.astype("<i8").tobytes(order="C"))
        f.write(np.array(doc_index, dtype="<i8").tobytes(order="C"))
    with open(a.prefix + ".json", "w") as f:
        json.dump(documents, f)


if __name__ == "__main__":
    main()
