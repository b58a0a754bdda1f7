"""Training and benchmarks: ``loop`` (one training loop for any model, batch source and loss),
``gpt_chars`` (the chapter's GPT on tiny Shakespeare characters: one configuration of the loop, and
its command line), ``optim`` (AdamW), ``bench`` (step time and MFU), ``experiments`` (13.21, 13.22),
``decode_bench`` (13.23). ``python -m models.training`` trains the chapter's GPT."""

import time

T_LAUNCH = time.time()  # "time from launch" is measured from here: the first import of models.training
