"""Training and fine-tuning MViT classifiers on a folder of labelled videos."""
