"""``python -m models.training``: train the chapter's GPT on tiny Shakespeare."""

from models.training.gpt_chars import main

if __name__ == "__main__":
    raise SystemExit(main())
