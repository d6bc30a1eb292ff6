localrules:
    download,


rule download:
    output:
        marker="{path}/.extracted",
    params:
        archive=lambda wc: archive_for(wc.path),
    log:
        f"{RESULTS}/logs/download/{{path}}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m stages.download --source {params.archive[url]:q}"
        " --sha256 {params.archive[sha256]} --dest {params.archive[file]:q}"
        " --extract-to {wildcards.path:q} --strip-components {params.archive[strip_components]}"
        " 2> {log}"


def archive_for(path):
    for name, archive in config["download"]["archives"].items():
        if Path(archive["extract_to"]) == Path(path):
            return {
                "url": archive["url"],
                "sha256": archive["sha256"],
                "file": f"{DATA}/downloads/{name}.archive",
                "strip_components": archive.get("strip_components", 0),
            }
    raise ValueError(f"no archive in config download.archives extracts to {path}")
