"""Training data: record parsing and validation, tokenisation, collation, the data module."""
