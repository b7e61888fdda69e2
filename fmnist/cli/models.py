"""`fmnist-job models ...`: exported versions and their labels (fmnist/ops/versions.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from fmnist.cli import reporting
from fmnist.cli.common import echo_rows, fail, place

app = typer.Typer(
    rich_markup_mode=None,
    help="Exported versions and their labels (models.config, TF Serving's model config): "
    "list, promote, roll back, prune.",
    no_args_is_help=True,
)

ExportDir = Annotated[
    str,
    typer.Option(
        "--export-dir", help="The export base fmnist-job train exported into (or s3://...)."
    ),
]


@app.command("list", short_help="Versions: created, variant, accuracies, labels.")
def models_list(
    export_dir: ExportDir = "models/fmnist",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per version.")] = False,
) -> None:
    """Versions with their creation time, variant, val/test accuracy, labels and size."""
    from fmnist.ops import versions

    try:
        rows = versions.listing(place(export_dir, "--export-dir"))
    except versions.VersionsError as e:
        raise fail(str(e))
    echo_rows(rows, as_json, versions.table)


@app.command("promote")
def models_promote(
    version: Annotated[int, typer.Argument(help="The version to label stable.")],
    export_dir: ExportDir = "models/fmnist",
    mlflow_uri: reporting.MlflowUri = None,
) -> None:
    """Label VERSION `stable`: score and TF Serving use it from now on."""
    from fmnist.ops import versions

    mlflow_uri = reporting.check_mlflow(mlflow_uri)
    base = place(export_dir, "--export-dir")
    try:
        before, now = versions.promote(base, version)
    except versions.VersionsError as e:
        raise fail(str(e))
    typer.echo(
        f"stable: version {now}"
        + (" (already)" if before == now else f" (was {before if before is not None else 'none'})")
    )
    _mirror(mlflow_uri, base)


@app.command("rollback")
def models_rollback(
    export_dir: ExportDir = "models/fmnist", mlflow_uri: reporting.MlflowUri = None
) -> None:
    """Label the previous `stable` version stable again."""
    from fmnist.ops import versions

    mlflow_uri = reporting.check_mlflow(mlflow_uri)
    base = place(export_dir, "--export-dir")
    try:
        before, now = versions.rollback(base)
    except versions.VersionsError as e:
        raise fail(str(e))
    typer.echo(f"stable: version {now} (rolled back from {before})")
    _mirror(mlflow_uri, base)


def _mirror(mlflow_uri: str | None, base) -> None:
    """MLflow's `stable`/`candidate` aliases follow models.config's labels; a server that
    cannot be reached costs a warning, the labels stand."""
    if mlflow_uri:
        from fmnist.ops import tracking

        reporting.warn(tracking.sync_aliases(mlflow_uri, base))


@app.command("prune")
def models_prune(
    keep: Annotated[
        int,
        typer.Option(
            min=0,
            help="Newest versions to keep; the stable and candidate versions and the "
            "one rollback would return to are always kept.",
        ),
    ],
    export_dir: ExportDir = "models/fmnist",
) -> None:
    """Delete old versions."""
    from fmnist.ops import versions

    try:
        gone = versions.prune(place(export_dir, "--export-dir"), keep)
    except versions.VersionsError as e:
        raise fail(str(e))
    typer.echo(
        f"pruned version{'s' * (len(gone) > 1)} {', '.join(map(str, gone))}"
        if gone
        else "nothing to prune"
    )


@app.command("show", short_help="A version's model card: what to read before promoting it.")
def models_show(
    version: Annotated[int, typer.Argument(help="The version whose card to print.")],
    export_dir: ExportDir = "models/fmnist",
) -> None:
    """Print VERSION's model card (card.md beside its fmnist.json): variant and sweep,
    data checksums, accuracies per class, calibration, the gate's decision, lineage; then
    its labels and changes of stable now."""
    from fmnist.ops import cards, versions

    try:
        typer.echo(cards.show(place(export_dir, "--export-dir"), version), nl=False)
    except versions.VersionsError as e:
        raise fail(str(e))


@app.command("history", short_help="Who made which version stable, when and why.")
def models_history(
    export_dir: ExportDir = "models/fmnist",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one per change.")] = False,
) -> None:
    """Every change of `stable`, oldest first: the gate's promotions, promote and
    rollback, with when, why and by whom (models.history.json)."""
    from fmnist.ops import versions

    base = place(export_dir, "--export-dir")
    try:
        if not base.is_dir():
            raise versions.VersionsError(f"{export_dir}: no such directory; pass --export-dir")
        rows = versions.history_events(base)
    except versions.VersionsError as e:
        raise fail(str(e))
    echo_rows(rows, as_json, versions.history_table)
