"""The one Jinja environment every renderer uses, and where its templates come from.

Templates live in the repository's top-level `templates/` folder, shipped inside the
wheel as `digest/templates`. A file in a user folder (`[digest] templates`) overrides the
built-in one of the same name. Every template is read when its environment is made, and
the environment is kept: a template changed afterwards is seen by the next process.

HTML, XML and OPML templates are autoescaped; `.txt` and `.md` templates are not (they
are not markup): Markdown templates escape every piece of dump text with the `md` filter.
Undefined variables are errors (`StrictUndefined`), never silently empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from jinja2 import (
    BaseLoader,
    Environment,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_environment,
    select_autoescape,
)
from jinja2.filters import do_wordwrap

from digest.render.text import format_date, format_day

_HERE = Path(__file__).resolve().parent


def builtin_templates() -> Path:
    """`digest/templates` in an installed wheel; the repository's `templates/` in a checkout."""
    packaged = _HERE.parent / "templates"
    if packaged.is_dir():
        return packaged
    return _HERE.parent.parent / "templates"


@lru_cache(maxsize=8)
def template_environment(user_folder: Path | None = None) -> Environment:
    """The Jinja environment; templates in `user_folder` (if given) override the built-in ones."""
    folders = [builtin_templates()]
    if user_folder is not None:
        folders.insert(0, user_folder)
    return _environment([_read_folder(folder) for folder in folders])


def template_problem(user_folder: Path) -> str:
    """What is wrong with the first template of `user_folder` that does not compile (its file,
    line and Jinja's reason), or "": found when the configuration is read, before any work.
    Only the files that replace a built-in template are compiled here: a README or an editor's
    backup in the folder is no template (a file the overrides include is checked when used)."""
    env = template_environment(user_folder)
    overrides = set(_read_folder(user_folder)) & set(_read_folder(builtin_templates()))
    for name in sorted(n for n in overrides if not Path(n).name.upper().startswith("README")):
        try:
            env.get_template(name)
        except TemplateSyntaxError as exc:
            return f"{user_folder / name}, line {exc.lineno}: {exc.message}"
    return ""


TemplateSources = tuple[tuple[str, str], ...]
"""Templates as data: (name, as `get_template` takes it; text) pairs."""


def template_sources(env: Environment) -> TemplateSources:
    """Every template `env` renders with, as data: for a worker to render with exactly these
    (`sources_environment`), whatever the templates on its own disk say."""
    assert env.loader is not None
    return tuple((name, env.loader.get_source(env, name)[0]) for name in env.list_templates())


@lru_cache(maxsize=8)
def sources_environment(sources: TemplateSources) -> Environment:
    """The Jinja environment with `sources` (`template_sources`) over the built-in templates:
    the same templates, hence the same output, as the environment they were taken from."""
    # Named by their names (a worker has no file of them): an error says which template failed.
    return _environment([{name: (text, name) for name, text in sources}, _read_folder(builtin_templates())])


_Sources = dict[str, tuple[str, str | None]]  # template name: its text, and its file when it has one


def _read_folder(folder: Path) -> _Sources:
    """Every template of a folder, read now (as Jinja's FileSystemLoader reads one: UTF-8,
    newlines as they are; a file that is not UTF-8 text is no template)."""
    found: _Sources = {}
    for path in sorted(folder.rglob("*")):
        try:
            if path.is_file():
                found[path.relative_to(folder).as_posix()] = (path.read_bytes().decode("utf-8"), str(path))
        except (OSError, UnicodeDecodeError):
            continue
    return found


class _Snapshot(BaseLoader):
    """Templates read once, when the environment is made: what a page's stamp covers
    (`render.stamps`) is then exactly what renders it, even if a file changes meanwhile."""

    def __init__(self, layers: list[_Sources]) -> None:
        self._sources: _Sources = {}
        for layer in reversed(layers):  # the first layer wins
            self._sources.update(layer)

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool]]:
        if template not in self._sources:
            raise TemplateNotFound(template)
        text, filename = self._sources[template]
        return text, filename, lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self._sources)


def _environment(layers: list[_Sources]) -> Environment:
    from digest.render.markdown import markdown_escape

    env = Environment(
        loader=_Snapshot(layers),
        autoescape=select_autoescape(enabled_extensions=("html", "xml", "opml"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["md"] = markdown_escape
    env.filters["day"] = format_day
    env.filters["date"] = format_date
    env.filters["wordwrap"] = _remembered_wordwrap
    return env


@pass_environment
def _remembered_wordwrap(
    environment: Environment,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    """Jinja's `wordwrap`, remembered: a build wraps each paper's summary for every email
    that shows it, and `textwrap` was a fifth of an email's rendering (bench/RESULTS.md)."""
    wrap = environment.newline_sequence if wrapstring is None else wrapstring
    if type(s) is not str or type(wrap) is not str:  # Markup or other: not the same as a str
        return do_wordwrap(environment, s, width, break_long_words, wrap, break_on_hyphens)
    return _wordwrap(s, width, break_long_words, wrap, break_on_hyphens)


@lru_cache(maxsize=4096)
def _wordwrap(s: str, width: int, break_long_words: bool, wrapstring: str, break_on_hyphens: bool) -> str:
    return do_wordwrap(None, s, width, break_long_words, wrapstring, break_on_hyphens)  # type: ignore[arg-type]


# A frame of a template in a worker's traceback, as the pool sends it back (text).
_REMOTE_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (?:top-level template code|block |macro |template)')


def template_location(exc: BaseException) -> tuple[str, int] | None:
    """The file and line of the innermost template frame: Jinja runs a template's code with
    `__jinja_exception__` (or `__jinja_template__`) among its globals; from a worker process,
    the frame is in the text of the traceback the pool sends back."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        names = tb.tb_frame.f_globals
        if "__jinja_exception__" in names or "__jinja_template__" in names:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    if found is None and exc.__cause__ is not None:
        remote = _REMOTE_FRAME.findall(str(exc.__cause__))
        if remote:
            found = (remote[-1][0], int(remote[-1][1]))
    return found


def is_template_failure(exc: BaseException) -> bool:
    """Whether `exc` is a template's fault (Jinja's own error, or one raised in a template's
    code): the owner's to fix, so the run stops naming it instead of going on without it."""
    return isinstance(exc, TemplateError) or template_location(exc) is not None
