"""Sample text from a trained character GPT: ``python -m models.sample --ckpt DIR``.

Reads ``DIR/ckpt.pt`` (written by ``python -m models.training --out DIR``) with ``weights_only=True``,
so a crafted file cannot run code; rebuilds the GPT from the checkpoint's ``model_config``; and
generates with :meth:`models.gpt.GPT.generate` and its KV cache. The model was trained on contexts of at
most ``block_size`` characters, so a text longer than that is generated in windows: each window starts a
fresh cache from the last ``block_size // 2`` characters (the whole prompt, up to ``block_size - 1``, for
the first) and fills it up to ``block_size``.

Units and shapes: the prompt is encoded to ids of shape (1, P) with the vocabulary of ``--data`` (the
corpus's sorted distinct characters, as the trainer builds it); ``--chars`` new characters are drawn
(temperature 0: the most likely one each time), one batch row. Prints the prompt followed by the
``--chars`` characters and a newline. The same checkpoint, prompt, settings, seed and device give the
same text.

Errors (one line naming the flag, exit 2): a missing, damaged or foreign checkpoint (``--ckpt``); a
corpus whose vocabulary size differs from the model's (``--data``); a prompt character outside the
vocabulary (``--prompt``); numbers out of range (``--chars``, ``--temperature``, ``--top-k``, ``--seed``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from models.data.chars import CharData
from models.gpt import GPT, GPTConfig
from models.training.loop import CHECKPOINT_KEYS
from models.utils.cli import OneLineParser, finite_float, guard, input_file, int_in, positive_int, seed_int, text
from models.utils.device import generator, pick_device

MAX_CHARS = 100_000  # generated characters per call (and prompt length): a bound, not a tuned size
FLAGS = {n: "--" + n.replace("_", "-") for n in ("ckpt", "prompt", "chars", "temperature", "top_k", "seed")}
FLAGS |= {"device": "--device", "data": "--data"}


def read_checkpoint(path: str | Path) -> dict:
    """The state a trainer checkpoint holds: ``path`` is the file or the ``--out`` folder holding
    ``ckpt.pt``. Read with ``weights_only=True`` (tensors and plain types only), on the CPU. ValueError
    naming ``ckpt`` for a missing, unreadable or foreign file (the keys the trainer writes,
    :data:`models.training.loop.CHECKPOINT_KEYS`, must be there, ``model_config`` a dict)."""
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    if not path.is_file():
        raise ValueError(f"ckpt: no checkpoint at {str(path)!r} (train with: python -m models.training --out DIR)")
    try:
        s = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip, EOF, and the weights-only unpickler's refusals all land here
        raise ValueError(f"ckpt: {str(path)!r} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(s, dict) or not CHECKPOINT_KEYS <= set(s):
        raise ValueError(f"ckpt: {str(path)!r} is not a checkpoint of the trainer (keys missing)")
    bad = [k for k in ("model_config", "model", "train_config") if not isinstance(s[k], dict)]
    if bad:
        raise ValueError(f"ckpt: {str(path)!r} is not a checkpoint of the trainer ({', '.join(bad)} malformed)")
    return s


def load_gpt(state: dict, device: torch.device | str = "cpu") -> GPT:
    """The GPT of a checkpoint's ``state`` (:func:`read_checkpoint`), in eval mode, float32 on ``device``.
    ValueError naming ``ckpt`` when its ``model_config`` is not a GPTConfig or its weights do not fit it."""
    try:
        model = GPT(GPTConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as e:
        raise ValueError(f"ckpt: the checkpoint does not hold a GPT of this code ({type(e).__name__})") from None
    return model.to(device).eval()


def trained_on(state: dict) -> str | None:
    """The corpus a checkpoint's run was trained on: its ``--data``, or None for the default (tiny
    Shakespeare). ValueError naming ``data`` when that file is gone."""
    data = state["train_config"].get("data")
    if data is not None and not (isinstance(data, str) and Path(data).is_file()):
        raise ValueError(f"data: the checkpoint was trained on {data!r}, which is not there; give --data")
    return data


@torch.inference_mode()
def sample(
    model: GPT,
    ids: torch.Tensor,
    chars: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """``ids`` (1, P) int64 followed by ``chars`` generated ids: (1, P + chars). Windows of at most
    ``block_size`` positions, each a fresh KV cache (see the module docstring); ``gen`` draws every token."""
    bs = model.config.block_size
    if bs < 2:  # no room for a context and a new token in one cache: re-run the last position instead
        return model.generate(ids, chars, temperature, top_k, use_cache=False, generator=gen)
    out, keep = ids, bs - 1  # the first window keeps as much of the prompt as fits
    while out.size(1) - ids.size(1) < chars:
        ctx = out[:, -keep:]
        n = min(chars - (out.size(1) - ids.size(1)), bs - ctx.size(1))
        new = model.generate(ctx, n, temperature, top_k, use_cache=True, generator=gen)[:, ctx.size(1) :]
        out, keep = torch.cat((out, new), dim=1), bs // 2
    return out


def build_parser() -> argparse.ArgumentParser:
    """The sampler's parser; types refuse bad numbers and paths at parse time."""
    p = OneLineParser(prog="python -m models.sample", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--ckpt",
        required=True,
        type=_existing(),
        metavar="DIR",
        help="folder written by python -m models.training --out (or its ckpt.pt); required",
    )
    p.add_argument("--prompt", type=_prompt, default="\n", help="text to continue; default: a newline")
    p.add_argument(
        "--chars",
        type=positive_int(MAX_CHARS),
        default=500,
        help=f"characters to generate (1 to {MAX_CHARS:,}); default: 500",
    )
    p.add_argument(
        "--temperature",
        type=finite_float(0),
        default=1.0,
        help="divides the logits; 0: greedy (the most likely character); default: 1.0",
    )
    p.add_argument(
        "--top-k", type=int_in(1), default=None, help="draw among the k most likely characters; default: all"
    )
    p.add_argument("--seed", type=seed_int(), default=1337, help="seed of the draws; default: 1337")
    p.add_argument(
        "--device",
        type=text(),
        default=None,
        help="cpu, cuda or cuda:N; default: $PROOFS_DEVICE, else cuda when available, else cpu",
    )
    p.add_argument(
        "--data",
        type=input_file(),
        default=None,
        help="corpus giving the character vocabulary; default: the checkpoint's training --data, "
        "else $TINY_SHAKESPEARE, else the cached or downloaded tiny Shakespeare",
    )
    return p


def _existing():
    def conv(s: str) -> str:
        if not s.strip() or not Path(s).exists():
            raise argparse.ArgumentTypeError(f"no folder or file at {s!r}")
        return s

    return conv


def _prompt(s: str) -> str:
    if not s:
        raise argparse.ArgumentTypeError("must not be empty (the model needs a character to start from)")
    if len(s) > MAX_CHARS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CHARS:,} characters, got {len(s):,}")
    return s


def main(argv: list[str] | None = None) -> int:
    """Sample from the command line; exit 0, 2 (bad input, one line) or 130 (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    return guard(lambda: _sample(args), FLAGS)


def _sample(args) -> int:
    device = pick_device(args.device)
    state = read_checkpoint(args.ckpt)
    model = load_gpt(state, device)
    data = CharData.load(args.data or trained_on(state))
    if data.vocab_size != model.config.vocab_size:
        raise ValueError(
            f"data: {data.source.removeprefix('data: ')} has {data.vocab_size} distinct characters, "
            f"the model {model.config.vocab_size}: give the corpus it was trained on"
        )
    try:
        ids = data.encode(args.prompt)[None].to(device)  # (1, P)
    except ValueError as e:
        raise ValueError(f"prompt: {str(e).removeprefix('s: ')} of the corpus") from None
    out = sample(model, ids, args.chars, args.temperature, args.top_k, generator(device, args.seed))
    sys.stdout.write(data.decode(out[0].tolist()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
