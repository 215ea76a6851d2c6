"""The local engine (`engine.LocalEngine`): decoding in worker processes with a deadline per
file (`workers`, forked from `decoder_server`), views batched across files through the
backend in this process (`runner` for classify, `timeline_runner` for timelines).

Nothing is imported here: commands start the decoders' server before torch is imported, by
importing `decoder_server` alone."""
