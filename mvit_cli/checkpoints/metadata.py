"""The metadata keys of this project's own safetensors files (plain strings, no torch)."""

META_FORMAT = "format"
META_ARCHITECTURE = "mvit.architecture"
META_LABELS = "mvit.labels"
META_POOL_NORM_EPS = "mvit.pool_norm_eps"
META_CONFIG = "mvit.config"
META_PROTOCOL = "mvit.protocol"
META_WEIGHTS = "mvit.weights"  # the registry name the file was made for
META_SOURCE = "mvit.source"
META_SOURCE_SHA256 = "mvit.source_sha256"
# Who vouches for the source's digest: "publisher" (checked against theirs) or "user" (pinned
# at the first download, the publisher giving none).
META_DIGEST_FROM = "mvit.digest_from"
META_TRAINING = "mvit.training"
FORMAT_NAME = "mvit"
