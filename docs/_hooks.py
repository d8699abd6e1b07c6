"""MkDocs hooks: the repository files that the pages link to are published with the site.

The pages link to repository files as such (`../../specs/x.yaml` from
docs/tutorials/, `../CHANGELOG.md` from docs/), which is what works when they
are read on a code host. The site has no such files, so the example specs are
copied in as `specs/*.yaml`, the changelog becomes the page `changelog.md`,
and the links are rewritten to point there.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

LINK = re.compile(r"\]\((?P<target>[^)\s#]+\.(?:ya?ml|md))(?P<anchor>#[^)\s]*)?\)")


def _root(config) -> Path:
    return Path(config["config_file_path"]).parent


def _published(root: Path) -> dict[Path, str]:
    """Repository file -> its path in the site."""
    paths = {spec: f"specs/{spec.name}" for spec in sorted((root / "specs").glob("*.yaml"))}
    paths[root / "CHANGELOG.md"] = "changelog.md"
    return paths


def on_files(files: Files, config) -> Files:
    root = _root(config)
    for source, target in _published(root).items():
        if target.endswith(".md"):
            files.append(File.generated(config, target, abs_src_path=str(source)))
        else:
            files.append(File(target, str(root), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = _root(config)
    published = _published(root)
    page_dir = (Path(config["docs_dir"]) / page.file.src_uri).parent
    here = posixpath.dirname(page.file.src_uri) or "."

    def rewrite(match: re.Match) -> str:
        target = match["target"]
        if "://" in target:
            return match[0]
        site_path = published.get((page_dir / target).resolve())
        if site_path is None:
            return match[0]
        return f"]({posixpath.relpath(site_path, here)}{match['anchor'] or ''})"

    return LINK.sub(rewrite, markdown)
