"""MkDocs hook: publish the shipped pictures in samples/ with the site, at samples/NAME.

index.md shows them as `samples/NAME.png` (checked by the build). The other pages use HTML `<img>` with
`../samples/NAME.png`, as pretrained/README.md (included as pretrained.md) does: on GitHub that is the repository's
samples/, and on the site each page's URL (NAME/, use_directory_urls) makes it this copy.
"""

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
PICTURES = ("*.png", "*.gif")


def on_files(files: Files, config) -> Files:
    for pattern in PICTURES:
        for path in sorted((ROOT / "samples").glob(pattern)):
            files.append(
                File(
                    f"samples/{path.name}",
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files
