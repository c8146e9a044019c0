"""`translate.evaluate`: how good a model (or a folder of images it or another tool made) is (FID, KID,
precision/recall, per class, paired and memorisation figures), as `translate evaluate` measures it, returned as a
typed report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvaluationReport:
    """The figures of one evaluation. The common ones are fields; everything that applies to the model (per class,
    classified-as-requested, latent codes, paired L1/PSNR/SSIM/ink IoU, memorisation) is in `figures` under the
    keys `translate evaluate --json` writes."""

    model: str  # the file (or folder of images) evaluated
    backend: str  # what ran it, e.g. "dcgan, step 3000, PyTorch on cpu"; "images" for a folder of images
    features: str  # the feature network
    seed: int
    generated: int  # images generated (or translated, or found in the folder evaluated)
    real: int  # real images compared with
    fid: float
    kid: float  # KID's mean over subsets
    kid_std: float
    precision: float | None  # k-NN precision and recall (None with too few images)
    recall: float | None
    figures: dict[str, Any] = field(default_factory=dict)  # the whole report, as the JSON file holds it

    @classmethod
    def from_figures(cls, figures: dict[str, Any]) -> EvaluationReport:
        return cls(
            model=figures["model"],
            backend=figures["backend"],
            features=figures["features"],
            seed=figures["seed"],
            generated=figures["generated"],
            real=figures["real"],
            fid=figures["fid"],
            kid=figures["kid_mean"],
            kid_std=figures["kid_std"],
            precision=figures.get("precision"),
            recall=figures.get("recall"),
            figures=figures,
        )

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) rows, as `translate evaluate` prints its table."""
        from translate.deploy.evaluate import report_lines

        return report_lines(self.figures)

    def to_dict(self) -> dict[str, Any]:
        """Every figure, as `translate evaluate --json` writes them."""
        return dict(self.figures)


def evaluate(
    model: str | Path,
    real: str | Path,
    *,
    input: str | Path | None = None,
    direction: str | None = None,
    n: int = 10_000,
    seed: int = 0,
    features: str = "inception",
    memorization: str | Path | None = None,
    picture: str | Path | None = None,
    device: str = "auto",
    advance: Callable[[str, int, int], None] | None = None,
) -> EvaluationReport:
    """Measure a model, or a folder of images, against real images.

    Args:
        model: anything `translate.load` takes, or a folder of images (one without the `checkpoints/` of a run
            folder), made by any tool: they are scored as a translator's outputs are, paired by name with `real`.
        real: a folder of real images, held out from training.
        input: translators: the images to translate (source domain); with `real` holding their targets under the
            same names, paired figures (L1, PSNR, SSIM, ink IoU) are added. A folder of images: the images it was
            made from (same names), for the "output = input" figures beside the paired ones.
        direction: translators: "a2b" (default) or "b2a".
        n: samples to draw (at most this many real images are used).
        seed: seed of the samples and of every random subset.
        features: the feature network: "inception" (FID's, downloaded once), "mnist" (shipped) or a FILE.onnx.
        memorization: generators: the training images; adds how near samples come to them.
        picture: with `memorization`: write the samples beside their nearest training images here.
        advance: progress callback (what, done, total) for each feature extraction.

    Examples:
        >>> report = translate.evaluate("mnist-cgan", "digits/heldout", n=1000, features="mnist")
        >>> report.fid, report.figures["classified"]["accuracy"]
        >>> translate.evaluate("outputs", "photos/testB", input="photos/testA", features="inception").figures["paired"]
    """
    from translate.deploy.evaluate import EvaluateRequest, run_evaluate

    request = EvaluateRequest(
        str(model),
        Path(real),
        None if input is None else Path(input),
        direction,
        n,
        seed,
        features,
        None if memorization is None else Path(memorization),
        None if picture is None else Path(picture),
        device,
    )
    return EvaluationReport.from_figures(run_evaluate(request, advance))
