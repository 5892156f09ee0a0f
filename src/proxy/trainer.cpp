// placeholder: replaced by the part's implementation
