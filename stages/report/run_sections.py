"""The sections about the run rather than a model: datasets, runtime and memory, provenance."""

from __future__ import annotations

from stages.report.benchmarks import RuleBenchmark
from stages.report.datasets import DatasetStats
from stages.report.markup import (
    Column,
    count,
    definitions,
    esc,
    fixed,
    number_cell,
    paragraph,
    section,
    slug,
    table,
    text_cell,
)
from stages.report.plots import bar_chart
from stages.report.provenance import Provenance
from stages.taxonomy import class_name


def datasets_section(stats: DatasetStats) -> str:
    parts = []
    if stats.missing_tables:
        parts.append(paragraph(f"No shards found for: {', '.join(stats.missing_tables)}.", "note"))

    quarantined = stats.quarantined_per_synset()
    columns = [Column("class", numeric=False), Column("synset", numeric=False), Column("usable meshes"),
               Column("quarantined meshes")]
    rows = [
        [
            text_cell(class_name(s), id=slug("meshes", class_name(s), "class"), header=True),
            text_cell(s),
            number_cell(stats.meshes_per_synset.get(s, 0), count(stats.meshes_per_synset.get(s, 0)),
                        slug("meshes", class_name(s), "usable")),
            number_cell(quarantined.get(s, 0), count(quarantined.get(s, 0)), slug("meshes", class_name(s), "quarantined")),
        ]
        for s in stats.synsets
    ]
    total_usable, total_quarantined = sum(stats.meshes_per_synset.values()), len(stats.quarantine)
    foot = [("total", [text_cell("all classes", header=True), text_cell(""),
                       number_cell(total_usable, count(total_usable), "meshes-all-usable"),
                       number_cell(total_quarantined, count(total_quarantined), "meshes-all-quarantined")])]
    parts.append(section("meshes", "Meshes per class", table("meshes-per-class", columns, rows, foot,
                         "Meshes converted (meshes table) and set aside with a reason (quarantine table)."), 3))
    parts.append(section("quarantine", "Quarantined meshes", _quarantine(stats), 3))
    parts.append(section("scenes", "Scenes per dataset and split", _scenes(stats), 3))
    return section("datasets", "Datasets", "".join(parts))


def _quarantine(stats: DatasetStats) -> str:
    if stats.quarantine.empty:
        return paragraph("No mesh was quarantined.")
    reasons = stats.reasons()
    reason_rows = [
        [text_cell(reason, header=True), number_cell(int(n), count(n))] for reason, n in reasons.items()
    ]
    by_reason = table("quarantine-reasons", [Column("reason", numeric=False), Column("meshes")], reason_rows,
                      caption="Quarantined meshes per reason.")
    columns = [Column("class", numeric=False), Column("synset", numeric=False), Column("mesh id", numeric=False),
               Column("source path", numeric=False), Column("reason", numeric=False)]
    rows = [
        [text_cell(class_name(r.synset), header=True), text_cell(r.synset), text_cell(r.mesh_id),
         text_cell(r.source_path), text_cell(r.reason, id=slug("quarantine", r.synset, r.mesh_id, "reason"))]
        for r in stats.quarantine.itertuples()
    ]
    listing = table("quarantine-list", columns, rows, caption="Every quarantined mesh, with the reason.")
    return by_reason + listing


def _scenes(stats: DatasetStats) -> str:
    if stats.scenes.empty:
        return paragraph("No scene tables.", "note")
    parts = []
    for dataset in stats.datasets():
        splits = stats.splits(dataset)
        objects = stats.objects[stats.objects["dataset"] == dataset]
        scenes = stats.scenes[stats.scenes["dataset"] == dataset].set_index("split")["scenes"]
        columns = [Column("class", numeric=False)] + [Column(f"{split} objects") for split in splits]
        table_counts = objects.pivot_table(index="synset", columns="split", values="objects", aggfunc="sum", fill_value=0)
        rows = []
        for synset in table_counts.index:
            name = class_name(synset)
            row = [text_cell(name, id=slug("scenes", dataset, name, "class"), header=True)]
            for split in splits:
                value = int(table_counts.at[synset, split]) if split in table_counts.columns else 0
                row.append(number_cell(value, count(value), slug("scenes", dataset, name, split)))
            rows.append(row)
        foot = [("total", [text_cell("scenes", header=True)] + [
            number_cell(int(scenes.get(split, 0)), count(scenes.get(split, 0)), slug("scenes", dataset, "all", split))
            for split in splits
        ])]
        parts.append(table(slug("scenes", dataset), columns, rows, foot,
                           f"Dataset {dataset}: objects of each class in the scenes of each split; last row: scenes."))
    return "".join(parts)


def runtime_section(benchmarks: list[RuleBenchmark]) -> str:
    if not benchmarks:
        body = paragraph("No benchmark files (results/benchmarks/<rule>/...tsv) were found.", "note")
        return section("runtime", "Runtime and memory per rule", body)
    columns = [Column("rule", numeric=False), Column("jobs"), Column("total time (s)"), Column("longest job (s)"),
               Column("max RSS (MB)", title="the largest resident memory of any one job"), Column("CPU time (s)")]
    rows = [
        [
            text_cell(b.rule, id=slug("runtime", b.rule, "rule"), header=True),
            number_cell(b.jobs, count(b.jobs), slug("runtime", b.rule, "jobs")),
            number_cell(b.total_s, fixed(b.total_s, 1), slug("runtime", b.rule, "total_s")),
            number_cell(b.max_s, fixed(b.max_s, 1), slug("runtime", b.rule, "max_s")),
            number_cell(b.max_rss_mb, fixed(b.max_rss_mb, 0), slug("runtime", b.rule, "max_rss_mb")),
            number_cell(b.cpu_s, fixed(b.cpu_s, 1), slug("runtime", b.rule, "cpu_s")),
        ]
        for b in benchmarks
    ]
    rules = [b.rule for b in benchmarks]
    plots = (
        '<div class="plots">'
        + bar_chart(rules, [("total", [b.total_s for b in benchmarks]), ("longest job", [b.max_s for b in benchmarks])],
                    title="Runtime per rule", value_label="wall-clock time (seconds)", category_label="rule",
                    value_format=lambda v: f"{v:,.1f} s")
        + bar_chart(rules, [("max RSS", [b.max_rss_mb for b in benchmarks])], title="Peak memory per rule",
                    value_label="max resident memory (MB)", category_label="rule",
                    value_format=lambda v: f"{v:,.0f} MB")
        + "</div>"
    )
    caption = "From Snakemake's benchmark files: one per job; wall-clock seconds, memory in MB."
    return section("runtime", "Runtime and memory per rule", table("runtime-table", columns, rows, caption=caption) + plots)


def provenance_section(provenance: Provenance) -> str:
    facts = definitions([
        ("generated", provenance.generated_utc),
        ("git commit", provenance.git_commit),
        ("work tree", provenance.git_state),
        ("host", provenance.host),
        ("platform", provenance.platform),
        ("GPU (seen by the report job)", provenance.gpu),
    ])
    versions = table(
        "versions",
        [Column("package", numeric=False), Column("version", numeric=False)],
        [[text_cell(name, header=True), text_cell(version, id=slug("version", name))]
         for name, version in provenance.versions.items()],
        caption="Software versions.",
    )
    configs = "".join(
        f"<details{' open' if i == 0 else ''}><summary>config file {esc(c.path)}</summary><pre>{esc(c.text)}</pre></details>"
        for i, c in enumerate(provenance.configs)
    ) or paragraph("No config file was given.", "note")
    note = paragraph("Config files in the order they were applied; a later file overrides an earlier one.", "note")
    return section("provenance", "Provenance", facts + versions + note + configs)
