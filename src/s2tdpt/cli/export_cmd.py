"""``s2tdpt export CHECKPOINT --out DIR``: shareable weights (safetensors + config.json) or an ONNX model."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """Write a checkpoint's model for sharing or deployment into the folder --out:
  safetensors (default): model.safetensors + config.json (model config, dataset, classes, normalisation) — no
    pickle, no optimiser. s2tdpt.load_pretrained(DIR) rebuilds the model; eval, explain and energy take DIR
    wherever they take a checkpoint. --push REPO uploads the folder to the Hugging Face Hub (huggingface_hub).
  onnx: model.onnx (eval mode, BatchNorm folded, the time loop unrolled for the model's T; images in, logits out,
    any batch size) + config.json; needs the onnx extra (pip install 's2tdpt[onnx]')."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export weights (safetensors) or an ONNX model", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("checkpoint", help="a checkpoint (.pt) or an exported weights folder")
    p.add_argument("--out", required=True, help="folder to write (must not exist, or be empty)")
    p.add_argument("--format", choices=("safetensors", "onnx"), default="safetensors", help="what to write")
    p.add_argument("--push", metavar="REPO", help="also upload the folder to this Hugging Face Hub repo (user/name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.checkpoint import load_checkpoint
    from ..engine.onnx_export import export_onnx_folder
    from ..engine.pretrained import check_free, export_pretrained

    out = Path(args.out)
    check_free(out)  # before reading the checkpoint: nothing is overwritten, ever
    ckpt = load_checkpoint(args.checkpoint)
    if args.format == "safetensors":
        export_pretrained(ckpt, out)
    else:
        export_onnx_folder(ckpt, out, args.checkpoint)
    print(f"wrote {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")
    if args.push:
        print(f"uploaded to {_push(out, args.push)}")
    return 0


def _push(folder: Path, repo: str) -> str:
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ValueError("--push needs huggingface_hub: pip install 's2tdpt[hub]'") from None
    api = HfApi()
    try:
        api.create_repo(repo, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo)
    except Exception as e:  # offline, not logged in, no rights: the hub's exception types vary by version
        raise ValueError(
            f"could not upload to the Hugging Face Hub repo {repo!r} ({type(e).__name__}: {str(e).splitlines()[0]}); "
            f"the exported folder {folder} is complete and can be uploaded later. Log in with `hf auth login` and "
            "check your network."
        ) from None
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo}")
