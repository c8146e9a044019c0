"""The `translate` command line: each command parses its options and calls one library function.

Heavy imports (torch) happen inside the commands, so `translate --help` and the ONNX paths stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from translate import __version__
from translate.backends import backend_choices, export_formats

app = typer.Typer(
    name="translate",
    help="Train and deploy GAN generators: image-to-image translators (CycleGAN, pix2pix) and image generators "
    "(DCGAN, WGAN-GP, conditional GAN, InfoGAN, BEGAN, ProGAN, LAPGAN). The same from Python: `import translate`.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # Plain help and usage errors: flags are listed as flags (rich's tables give every option a value type, even
    # `--help <bool>`), and a usage error is one `Error:` line after the usage, like the command's own errors.
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},  # the terminal's width, up to 120 columns
    add_completion=True,  # translate --install-completion (bash, zsh, fish, PowerShell)
)
err = Console(stderr=True)

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130


# Options with a fixed set of values, so --help lists them and a typo is a usage error before anything runs.
class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Direction(str, Enum):
    a2b = "a2b"
    b2a = "b2a"


class Walk(str, Enum):
    slerp = "slerp"
    lerp = "lerp"


# From the backends' registry (torch-free), so a new backend appears here by itself.
Backend = Enum("Backend", {name: name for name in backend_choices()}, type=str)
ExportFormat = Enum("ExportFormat", {name: name for name in export_formats()}, type=str)


MODEL_HELP = "Shipped name, run folder, checkpoint, .onnx or OpenVINO .xml export."
CODE_HELP = "infogan: fix a latent code, NAME=VALUE (e.g. cat=3 or c1=0.5); repeatable. Others are drawn at random."
BACKEND_HELP = (
    "What runs an exported model: onnxruntime, openvino, or auto (OpenVINO on x86 CPUs when it is installed, else "
    "ONNX Runtime). An OpenVINO .xml always runs on OpenVINO; checkpoints run on PyTorch."
)


@contextmanager
def _errors() -> Iterator[None]:
    """Known errors become one readable line on stderr and an exit code, never a traceback."""
    from rich.markup import escape

    from translate.errors import TranslateError

    try:
        yield
    except TranslateError as exc:
        # Messages may hold brackets (paths, `pip install "pkg[extra]"`) that are not markup.
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except (FileNotFoundError, PermissionError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        # Anything unforeseen still ends in one line; TRANSLATE_DEBUG=1 shows the traceback for a bug report.
        if os.environ.get("TRANSLATE_DEBUG"):
            raise
        err.print(
            f"[red]error:[/] {type(exc).__name__}: {exc} (set TRANSLATE_DEBUG=1 to see the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_FAILED) from None


@contextmanager
def _spinner(console: Console) -> Iterator[Callable[[str], None]]:
    """A function that shows the stage under way beside a spinner (on a terminal). The spinner starts at the first
    stage, so whatever runs before it (a download's own progress bar) has the screen to itself."""
    with ExitStack() as stack:
        shown = []

        def update(stage: str) -> None:
            if shown:
                shown[0].update(stage)
            else:
                shown.append(stack.enter_context(console.status(stage)))

        yield update


class _RecipeHelp(typer.core.TyperCommand):
    """A command whose help names the registered recipes and presets: `{recipes}` and `{presets}` in its options'
    help are filled from the registry when help is shown (the registry imports torch, which nothing else about
    parsing needs), so the lists cannot drift from the code."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:  # Any: typer's bundled click formatter
        from translate.recipes import RECIPES

        lists = {
            "recipes": ", ".join(f"{name} ({spec.data})" for name, spec in RECIPES.items()),
            "presets": "; ".join(f"{name} {'|'.join(spec.presets)}" for name, spec in RECIPES.items()),
        }
        for param in self.params:
            if param.help and "{" in param.help:
                param.help = param.help.format(**lists)
        super().format_help(ctx, formatter)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"translate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train and deploy GAN generators."""


@app.command(cls=_RecipeHelp)
def train(
    data: Annotated[
        str | None,
        typer.Argument(
            metavar="DATA",
            help="A folder (trainA/ and trainB/ for cyclegan; A|B pairs or A/ and B/ for pix2pix; images, or one "
            "sub-folder per class, for the generators) or a known dataset name, e.g. horse2zebra.",
            show_default=False,
        ),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            "-r",
            help="The training method: {recipes}. Default: --config's, --init's, else the one for DATA's layout.",
        ),
    ] = None,
    recipe_alias: Annotated[str | None, typer.Option("--model", "-m", hidden=True)] = None,  # its former name
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="A YAML or TOML file of config keys, as `translate config RECIPE` writes."),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="Start from these weights (run folder, checkpoint, shipped or official name), with fresh optimisers.",
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimisation steps (default: the recipe's; `translate config RECIPE` lists it).")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(help="Training size in px (default: the recipe's, e.g. 256 for cyclegan and pix2pix).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Images per step and process (default: the recipe's, e.g. 1 for cyclegan and pix2pix)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder that holds the runs.")] = Path("runs"),
    name: Annotated[str | None, typer.Option(help="Run name (default: the data folder's name).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run OUT/NAME from its newest checkpoint.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[
        Precision, typer.Option(help="Autocast precision; auto: bf16 where the device has it natively, else fp32.")
    ] = Precision.auto,
    compile_: Annotated[
        bool, typer.Option("--compile", help="torch.compile the networks (slower start, faster steps on GPUs).")
    ] = False,
    channels_last: Annotated[
        bool | None,
        typer.Option("--channels-last/--contiguous", help="Memory format (default: channels_last on CUDA)."),
    ] = None,
    grad_checkpointing: Annotated[
        bool,
        typer.Option("--grad-checkpointing", help="Recompute generator activations in backward: less memory."),
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for weights, data order and jitter (default 0).")] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Named settings of the recipe: {presets}."),
    ] = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Random horizontal flips.")] = None,
    direction: Annotated[
        Direction | None, typer.Option(help="pix2pix: a2b (A is the input; default) or b2a (B is the input).")
    ] = None,
    domain_a: Annotated[Path | None, typer.Option(help="Folder of domain A images (instead of DATA).")] = None,
    domain_b: Annotated[Path | None, typer.Option(help="Folder of domain B images (instead of DATA).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Any config field: --set lambda_cycle=5 (repeatable)."),
    ] = None,
) -> None:
    """Train a generator on a folder of images or a known dataset.

    Settings, later ones winning: the recipe's defaults < --preset < options (--steps, --image-size, ...) <
    --config < --set.
    """
    with _errors():
        from translate.api.training import train as run_training
        from translate.errors import ConfigError
        from translate.training.loop import TrainingStopped

        if recipe_alias is not None:
            if recipe is not None and recipe != recipe_alias:
                raise ConfigError(f"--recipe {recipe} and --model {recipe_alias} disagree: --model is --recipe")
            err.print("note: train's --model is now --recipe (--model names trained weights elsewhere)")
        request = {
            "recipe": recipe or recipe_alias,
            "preset": preset,
            "steps": steps,
            "image_size": image_size,
            "batch_size": batch_size,
            "out": out,
            "name": name,
            "resume": resume,
            "seed": seed,
            "device": device,
            "precision": precision.value,
            "init": init,
            "config": config_file,
            "settings": set_ or (),
            "domain_a": domain_a,
            "domain_b": domain_b,
            "direction": direction.value if direction else None,
            "flip": flip,
            "compile": compile_,
            "channels_last": channels_last,
            "grad_checkpointing": grad_checkpointing,
        }
        try:
            run_training(data, **request, console=err)
        except TrainingStopped as exc:
            err.print(
                f"[yellow]{exc}[/]" if exc.interrupted else f"[red]error:[/] {exc}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED if exc.interrupted else EXIT_FAILED) from None


@app.command("config", cls=_RecipeHelp)
def show_config(
    recipe: Annotated[str, typer.Argument(metavar="RECIPE", help="The training method: {recipes}.")],
    preset: Annotated[str | None, typer.Option(help="Start from this preset's values: {presets}.")] = None,
) -> None:
    """Print every config field of RECIPE with its default and meaning, as YAML that train --config reads back."""
    with _errors():
        from translate.training.launch import config_text

        typer.echo(config_text(recipe, preset), nl=False)


@app.command()
def apply(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="An image or a folder (walked recursively).")],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="A run folder, a .safetensors checkpoint, an .onnx or OpenVINO .xml export or a model name "
            "(`translate models`).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder, or file for one image (default: INPUT_<direction> beside INPUT)."),
    ] = None,
    direction: Annotated[
        Direction | None, typer.Option(help="Two-way models: which generator (default a2b; an .onnx file holds one).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Same-size images per forward pass.")] = 4,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps (OpenVINO: auto or cpu).")] = "auto",
    # 16384 px on the shorter side is at least 268 Mpx (3.2 GB as the network's float input): past any real use, so
    # a typo such as 30000 is a usage error up front, not a MemoryError mid-run.
    size: Annotated[
        int | None,
        typer.Option(min=8, max=16384, help="Work (and write) at this size: the shorter side scaled to SIZE px."),
    ] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Skip (and count as failed) images of more than N pixels, read from the header before decoding and "
            "checked after --size too (default 64000000; 0: no limit).",
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Translate images larger than N px a side in overlapping tiles of about N px, so memory does not "
            "grow with the image (default: 640 px tiles above 4 Mpx; 0: never tile).",
        ),
    ] = None,
    ext: Annotated[str | None, typer.Option(help="Output format, e.g. png (default: the input's).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist.")] = False,
    backend: Annotated[Backend, typer.Option(help=BACKEND_HELP)] = Backend.auto,
) -> None:
    """Translate an image or a whole folder tree; outputs keep their relative paths and names."""
    with _errors():
        from rich.markup import escape

        from translate.api.loading import load_translator
        from translate.imageio import MAX_PIXELS

        translator = load_translator(
            model, backend=backend.value, device=device, direction=direction.value if direction else None
        )

        def started(count: int, target: Path) -> None:
            err.print(f"{count} image(s) → {target} with {translator}", highlight=False, soft_wrap=True)

        summary = translator.translate_folder(
            input_path,
            out,
            ext=ext,
            overwrite=overwrite,
            batch_size=batch_size,
            size=size,
            max_pixels=MAX_PIXELS if max_pixels is None else max_pixels or None,  # not given: the default; 0: none
            tile=tile,
            console=err,
            on_start=started,
        )
        for line in summary.failure_lines():
            err.print(f"[yellow]failed:[/] {escape(line)}", highlight=False, soft_wrap=True)
        for note in summary.notes:
            err.print(note, highlight=False, soft_wrap=True)
        err.print(summary.closing_line(), highlight=False, soft_wrap=True)
        if summary.failed:
            raise typer.Exit(EXIT_FAILED)


@app.command()
def sample(
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of samples.")] = 64,
    out: Annotated[Path, typer.Option(help="FILE.png for one grid, or DIR/ for one file per sample.")] = Path(
        "samples.png"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the latents.")] = 0,
    label: Annotated[str | None, typer.Option(help="Class name or index (cgan); default: all classes.")] = None,
    truncation: Annotated[float | None, typer.Option(help="Redraw latent entries beyond ±T.")] = None,
    latents: Annotated[Path | None, typer.Option(help="Reuse latents saved with --save-latents (.npy).")] = None,
    save_latents: Annotated[Path | None, typer.Option(help="Save the latents used to this .npy file.")] = None,
    code: Annotated[list[str] | None, typer.Option("--code", metavar="NAME=VALUE", help=CODE_HELP)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    backend: Annotated[Backend, typer.Option(help=BACKEND_HELP)] = Backend.auto,
) -> None:
    """Draw samples from an image generator (default: the shipped mnist-clusters)."""
    with _errors():
        from translate.api.loading import load_generator

        generator = load_generator(model, backend=backend.value, device=device)
        paths = generator.save_samples(
            out,
            n,
            seed=seed,
            label=label,
            truncation=truncation,
            latents_file=latents,
            save_latents=save_latents,
            codes=code or (),
        )
        where = paths[0] if len(paths) == 1 else f"{len(paths)} files in {out}"
        err.print(f"{generator}: wrote {where}", highlight=False, soft_wrap=True)


@app.command()
def interpolate(
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    points: Annotated[int, typer.Option(min=2, help="Random latents to walk through (then back to the first).")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="Frames between two points.")] = 16,
    method: Annotated[Walk, typer.Option(help="slerp (keeps Gaussian norms) or lerp.")] = Walk.slerp,
    out: Annotated[Path, typer.Option(help="FILE.gif (looping animation) or FILE.png (one row per leg).")] = Path(
        "interpolation.gif"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the latents.")] = 0,
    latents: Annotated[Path | None, typer.Option(help="Walk through these saved latents (.npy) instead.")] = None,
    labels: Annotated[str | None, typer.Option(help="cgan: walk between classes, e.g. 3,8 (z fixed).")] = None,
    label: Annotated[str | None, typer.Option(help="cgan: the class of a latent walk (default: the first).")] = None,
    arithmetic: Annotated[
        str | None, typer.Option(help="Latent arithmetic on saved latents: a.npy-b.npy+c.npy.")
    ] = None,
    code: Annotated[list[str] | None, typer.Option("--code", metavar="NAME=VALUE", help=CODE_HELP)] = None,
    walk: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="infogan: sweep the continuous code NAME along each row, one row per categorical value, z fixed "
            "(--steps columns; a .png grid or a .gif).",
        ),
    ] = None,
    walk_range: Annotated[
        str | None, typer.Option("--range", metavar="LOW,HIGH", help="The span of --walk (default -2,2).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    backend: Annotated[Backend, typer.Option(help=BACKEND_HELP)] = Backend.auto,
) -> None:
    """Walk through latent space (or between classes, or along a latent code) and save an animation or a strip."""
    with _errors():
        from translate.api.loading import load_generator

        generator = load_generator(model, backend=backend.value, device=device)
        written = generator.save_interpolation(
            out,
            points=points,
            steps=steps,
            method=method.value,
            seed=seed,
            latents_file=latents,
            labels=labels,
            label=label,
            arithmetic=arithmetic,
            codes=code or (),
            walk_code=walk,
            walk_range=walk_range,
        )
        err.print(f"{generator}: wrote {written}", highlight=False, soft_wrap=True)


@app.command()
def export(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="A run folder, a .safetensors checkpoint or a model name (`translate models`)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="The .onnx (or, with --format openvino, .xml) file to write (default: NAME[_DIRECTION][_PRECISION] "
            "with that suffix in this folder)."
        ),
    ] = None,
    direction: Annotated[
        Direction | None, typer.Option(help="Translators: the generator to export (default a2b).")
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset; the file records the one really written.")] = 18,
    fp16: Annotated[bool, typer.Option("--fp16", help="Half-precision weights and compute (GPUs).")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Static int8 quantisation (CPUs with VNNI).")] = False,
    bf16: Annotated[
        bool, typer.Option("--bf16", help="--format openvino: bf16 compute (CPUs with AVX512-BF16 or AMX).")
    ] = False,
    file_format: Annotated[
        ExportFormat,
        typer.Option("--format", help="onnx, or openvino: OpenVINO IR (.xml + .bin) for the OpenVINO backend."),
    ] = ExportFormat.onnx,
    calibrate: Annotated[
        Path | None, typer.Option(help="--int8 translators: a folder of typical input images for calibration.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
    resolution: Annotated[
        int | None,
        typer.Option(help="progan: export the generator at this earlier resolution, px (default: the final one)."),
    ] = None,
) -> None:
    """Export a generator to ONNX or OpenVINO IR (with its metadata inside) after checking it against PyTorch."""
    with _errors():
        from translate.api.exporting import export as run_export
        from translate.errors import ConfigError

        chosen = [name for name, wanted in (("fp16", fp16), ("bf16", bf16), ("int8", int8)) if wanted]
        if len(chosen) > 1:
            raise ConfigError(f"--{' and --'.join(chosen)} exclude each other; choose one")
        precision = chosen[0] if chosen else "fp32"
        with _spinner(err) as status:
            result = run_export(
                model,
                out,
                direction=direction.value if direction else None,
                precision=precision,
                format=file_format.value,
                opset=opset,
                calibrate=calibrate,
                overwrite=overwrite,
                resolution=resolution,
                log=lambda line: err.print(line, highlight=False, soft_wrap=True),
                status=status,
            )
        err.print(
            f"wrote {result.path} ({result.precision}, opset {result.opset}, {result.bytes / 1e6:.1f} MB)",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def evaluate(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help=MODEL_HELP + " Or a folder of images (made by any tool) to score.")
    ],
    real: Annotated[Path, typer.Option(help="Real images to compare with (held out from training).")],
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="Translators: the images to translate (source domain). A folder of images: the images it was made "
            "from (same names), for the output = input figures.",
        ),
    ] = None,
    direction: Annotated[Direction | None, typer.Option(help="Translators: a2b or b2a (default a2b).")] = None,
    n: Annotated[int, typer.Option("--n", min=2, help="Samples to draw; at most this many real images.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the samples and of every random subset.")] = 0,
    features: Annotated[
        str, typer.Option(help="Feature network: inception (FID's, downloaded once), mnist (shipped) or FILE.onnx.")
    ] = "inception",
    memorization: Annotated[
        Path | None, typer.Option(help="Generators: the training images; report how near samples come to them.")
    ] = None,
    picture: Annotated[
        Path, typer.Option(help="With --memorization: samples beside their nearest training images.")
    ] = Path("nearest.png"),
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write every figure to this JSON file.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
) -> None:
    """Measure a model: FID, KID, precision/recall (and per class, paired and memorisation figures).

    MODEL may be a folder of images instead (one without a run folder's checkpoints/): they are scored against
    --real as a translator's outputs are, paired by name (relative path without the extension).
    """
    with _errors():
        import json

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from translate.api.evaluation import evaluate as run_evaluate
        from translate.files import atomic_write

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            tasks: dict[str, int] = {}

            def advance(what: str, done: int, total: int) -> None:
                if what not in tasks:
                    tasks[what] = bar.add_task(f"features of {what} images", total=total)
                bar.update(tasks[what], completed=done)

            report = run_evaluate(
                model,
                real,
                input=input,
                direction=direction.value if direction else None,
                n=n,
                seed=seed,
                features=features,
                memorization=memorization,
                picture=picture if memorization else None,
                device=device,
                advance=advance,
            )
        table = Table("figure", "value", title="evaluation", title_justify="left")
        for name, value in report.rows():
            table.add_row(name, value)
        Console().print(table)
        if json_file is not None:
            atomic_write(json_file, (json.dumps(report.to_dict(), indent=2) + "\n").encode())
            err.print(f"wrote {json_file}", highlight=False)


@app.command()
def probe(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="A run folder or checkpoint that holds a discriminator.")
    ],
    data: Annotated[Path, typer.Option(help="Labelled images: one sub-folder per class.")],
    heldout: Annotated[
        Path | None, typer.Option(help="Score on these (same class folders); default: 20% of each class of DATA.")
    ] = None,
    network: Annotated[str | None, typer.Option(help="Which discriminator (default: D, or D_B).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")] = None,
) -> None:
    """Linear probe of a discriminator's features: held-out accuracy, trained against untrained (DCGAN §5.1)."""
    with _errors():
        import json

        from translate.deploy.probe import ProbeRequest, run_probe
        from translate.files import atomic_write

        with err.status("fitting linear probes on the discriminator's features (trained and untrained)"):
            report = run_probe(ProbeRequest(model, data, heldout, network, seed))
        table = Table("figure", "value", title=f"linear probe of {report['network']}", title_justify="left")
        table.add_row("classes", f"{len(report['classes'])}: {', '.join(report['classes'])}")
        table.add_row("images", f"{report['train_images']} to fit, {report['test_images']} held out")
        table.add_row("features", f"{report['features']} (every convolution, max-pooled to 4×4)")
        table.add_row("held-out accuracy", f"{report['trained_accuracy']:.2%}")
        table.add_row("  same network untrained", f"{report['untrained_accuracy']:.2%}")
        table.add_row("  chance (largest class)", f"{report['chance']:.2%}")
        Console().print(table)
        if json_file is not None:
            atomic_write(json_file, (json.dumps(report, indent=2) + "\n").encode())


@app.command("datasets")
def list_datasets() -> None:
    """List the known datasets that `translate train NAME` downloads."""
    from translate.data.known import cache_dir, describe

    table = Table("family", "name", "cached", "what it is", title=f"known datasets (cache: {cache_dir() / 'datasets'})")
    for family, name, description, cached in describe():
        table.add_row(family, name, "yes" if cached else "", description)
    Console().print(table)


@app.command("models")
def list_models() -> None:
    """List the models `--model NAME` takes by name: shipped ones, and official ones downloaded on first use."""
    from translate.api.catalogue import models
    from translate.data.known import cache_dir

    table = Table("source", "recipe", title=f"models by name (official ones cached in {cache_dir() / 'models'})")
    table.add_column("name", no_wrap=True)  # copied into commands: never broken across lines
    table.add_column("cached")
    table.add_column("what it is", overflow="fold")
    for row in models():
        table.add_row(row.source, row.recipe, row.name, "yes" if row.cached else "", row.description)
    Console().print(table)


def main() -> None:
    app()
