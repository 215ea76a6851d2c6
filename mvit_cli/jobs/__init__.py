"""What a run is for: turning input items into decoding tasks, and scores into rows.

A job knows nothing of where its tasks run (engines/) or how views become probabilities
(backends/). `classify` gives each file the mean of its views' softmax and its top labels
(and, asked for, its pooled feature); `timeline` cuts each video into windows and gives
each window its softmax (and feature). Both jobs' rows go to one output registry (outputs/).
"""
