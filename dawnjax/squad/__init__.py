"""SQuAD v1.1 extractive question answering: data, features, BERT-style model, metric, decoding."""
