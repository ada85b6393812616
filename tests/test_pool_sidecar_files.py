"""The README's layout: the descriptions file beside the sounds is not an audio file that failed."""

import pyarrow as pa

from seeing_sound.pool import AudioPool, build_pool
from seeing_sound.pool.sources import find_sources
from seeing_sound.testing.signals import noise, write_audio

SR = 16000


def test_readme_layout_builds_with_zero_error_rows(tmp_path):
    sounds = tmp_path / "sounds"
    write_audio(sounds / "dog.wav", noise(2, SR, seed=1), SR)
    write_audio(sounds / "rain" / "roof.flac", noise(2, SR, seed=2), SR)
    (sounds / "descriptions.csv").write_text("file,description\ndog.wav,a dog barking\nroof.flac,rain on a roof\n")
    # build_pool(["sounds/"], "pool/", descriptions="sounds/descriptions.csv"), as the README writes it
    report = build_pool([sounds], tmp_path / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    assert report.errors == {} and report.files == report.files_ok == 2  # was: 1 unsupported_format row
    pool = AudioPool.open(tmp_path / "pool")
    assert pool.errors.num_rows == 0
    described = pa.Table.to_pylist(pool.manifest.select(["source", "description"]))
    assert {r["source"]: r["description"] for r in described} == {
        "sounds/dog.wav": "a dog barking",
        "sounds/rain/roof.flac": "rain on a roof",
    }


def test_an_excluded_file_is_not_a_source_other_files_are_recorded(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "a.wav", noise(1, SR), SR)
    (src / "labels.tsv").write_text("a.wav\tdog\n")  # the descriptions file, whatever its extension
    (src / "notes.md").write_text("hi")  # any other file is a source: an error row, so files seen == in
    found = {f.source for f in find_sources([src], exclude=[src / "labels.tsv"])}
    assert found == {"src/a.wav", "src/notes.md"}
