"""``tagger export``: a trained tagger as an ONNX directory or a smaller torch model directory."""

from __future__ import annotations

import click

from tagger.declare import InputPath


@click.command()
@click.argument("model_dir", type=InputPath(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory to write (must not exist, or be empty).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch"]), default="onnx", show_default=True,
              help="onnx: model.onnx + vocabularies for --runtime onnx (needs tagger[onnx]); torch: a regular "
              "model directory (with the options below, a smaller one).")
@click.option("--max-extra-words", type=click.IntRange(min=0), default=None,
              help="Keep only the N most frequent pretrained-only words (unseen in training) [default: all].")
@click.option("--float16", is_flag=True, help="Store the pretrained-only word vectors in float16.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def export(model_dir, out, fmt, max_extra_words, float16, quiet):
    """Export a trained tagger MODEL_DIR for serving: ONNX (onnxruntime, no torch) or a smaller torch model."""
    from tagger.onnx.export import export as run_export

    info = run_export(model_dir, out, fmt, max_extra_words=max_extra_words, float16=float16)
    if not quiet:
        click.echo(f"wrote {out} ({fmt}, {info['extra_words']:,} of {info['extra_words_source']:,} pretrained-only "
                   f"words{', float16' if float16 else ''}): {info['bytes'] / 1e6:.1f} MB")
