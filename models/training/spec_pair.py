"""The draft and target models of exercise 13.25, trained on tiny Shakespeare with the project's
trainer: a 4-layer target and a 1-layer draft of the same width and vocabulary, each otherwise the
preset's GPT (``cpu``: width 128, context 64; ``gpu``: width 384, context 256). They are written to a
cache folder, ``$XDG_CACHE_HOME/transformer-proofs/speculative/<preset>/{target,draft}`` (else
``~/.cache/...``), or under ``--dir``; nothing trained is committed."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from models.data.chars import CharData
from models.gpt import GPT, GPTConfig
from models.training.gpt_chars import MODEL_PRESETS, TRAIN_PRESETS, make_run
from models.training.loop import TrainConfig

LAYERS = {"target": 4, "draft": 1}  # the exercise's pair


def pair_dir(preset: str, root: str | Path | None = None) -> Path:
    """The folder of a preset's pair: ``root/<preset>``, ``root`` defaulting to the user's cache."""
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transformer-proofs" / "speculative"
    return Path(root) / preset


def configs(preset: str, role: str, vocab_size: int, **train) -> tuple[GPTConfig, TrainConfig]:
    """The model and training configs of ``role`` (target or draft) under ``preset``; ``train``
    overrides training fields (``max_iters``, ``device``, ``out``...). ValueError for an unknown
    preset or role."""
    if preset not in MODEL_PRESETS:
        raise ValueError(f"preset: unknown {preset!r}; choose from {sorted(MODEL_PRESETS)}")
    if role not in LAYERS:
        raise ValueError(f"role: unknown {role!r}; choose from {sorted(LAYERS)}")
    mc = GPTConfig(**(MODEL_PRESETS[preset] | {"n_layer": LAYERS[role], "vocab_size": vocab_size}))
    tkw = dict(TRAIN_PRESETS[preset]) | train
    if "max_iters" in train:  # a shorter run decays its learning rate over its own length
        tkw["lr_decay_iters"] = train["max_iters"]
    return mc, TrainConfig(**tkw)


def train_pair(preset: str, root=None, data: CharData | None = None, say=print, **train) -> Path:
    """Train the target, then the draft, into :func:`pair_dir` (each role's folder holds its
    ``ckpt.pt``); returns the pair's folder. ``train`` overrides training fields for both. ValueError
    naming ``dir`` when the folder already holds a trained model (nothing is overwritten), or naming
    the training field that is out of range, before anything trains."""
    folder = pair_dir(preset, root)
    held = [role for role in ("target", "draft") if (folder / role / "ckpt.pt").exists()]
    if held:
        raise ValueError(f"dir: {str(folder)!r} already holds a trained {' and '.join(held)}; give another --dir")
    data = data or CharData.load(None)
    runs = {role: configs(preset, role, data.vocab_size, **(train | {"out": str(folder / role)})) for role in LAYERS}
    for role in ("target", "draft"):  # both configurations are checked above, before either trains
        mc, tc = runs[role]
        say(f"[speculative] training the {role}: {mc.n_layer} layer(s), width {mc.n_embd}, {tc.max_iters} steps")
        run = make_run(mc, tc, data)
        try:
            s = run.fit()
        finally:
            run.close()
        say(f"[speculative] {role}: best val loss {s['best_val']:.4f} in {s['wall_s']:.0f} s -> {folder / role}")
    return folder


def load_pair(
    folder: str | Path, device: torch.device | str = "cpu", data: str | None = None
) -> tuple[GPT, GPT, CharData]:
    """The trained ``(target, draft, data)`` of a pair folder, in eval mode on ``device``; ``data`` is
    the corpus's file (default: the one the target was trained on, else tiny Shakespeare). ValueError
    naming ``dir`` when a model is missing (train it first), and naming ``draft`` when the two
    vocabularies differ."""
    from models.sample import load_gpt, read_checkpoint, trained_on

    folder = Path(folder)
    models = {}
    for role in ("target", "draft"):
        if not (folder / role / "ckpt.pt").is_file():
            raise ValueError(
                f"dir: no trained {role} in {str(folder)!r}; make the pair with: "
                f"python -m models.speculative train --preset {folder.name}"
            )
        state = read_checkpoint(folder / role)
        models[role] = (load_gpt(state, device), state)
    target, draft = models["target"][0], models["draft"][0]
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError("draft: its vocabulary differs from the target's; retrain the pair")
    return target, draft, CharData.load(data or trained_on(models["target"][1]))
