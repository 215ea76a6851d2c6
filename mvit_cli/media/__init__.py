"""From media files to the tensors a model takes: discovery, decoding, sampling, preprocessing."""
