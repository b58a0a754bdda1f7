"""Training and benchmarks: ``train`` (the loop and the GPT-on-characters run), ``optim`` (AdamW
and the schedule), ``bench`` (step time and MFU), ``experiments`` (13.21, 13.22), ``decode_bench``
(13.23). ``python -m models.training`` trains the chapter's GPT."""
