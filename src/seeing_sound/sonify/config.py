"""Settings of ``sonify``: its own fields (retrieval, mixing, output) and the concepts stage's."""

from __future__ import annotations

from dataclasses import dataclass, field

from seeing_sound.audio.loudness import ABSOLUTE_GATE_LUFS
from seeing_sound.audio.mix import DEFAULT_LUFS_RANGE
from seeing_sound.concepts.config import ConceptsConfig
from seeing_sound.config import Config, ConfigError, check_lufs_range, option
from seeing_sound.pool.config import AUDIO_PREP, AUDIO_PREP_HELP
from seeing_sound.retrieval.config import DEFAULT_TOPK, ENCODERS

AUDIO_FORMATS = ("flac", "wav")


@dataclass(frozen=True)
class SonifyConfig(Config):
    """Everything ``sonify`` decides besides its inputs; ``concepts_config`` configures the VLM stage."""

    encoder: str = option("clap", "query and pool encoder (paper: 3.3, CLAP)", choices=ENCODERS)
    model: str | None = option(
        None,
        "encoder model id or local path (ours: the paper cites LAION-CLAP, no checkpoint)",
        default_text="per encoder",
    )
    topk: int = option(DEFAULT_TOPK, "Algorithm 1's k (ours: the paper gives no k, see docs/retrieval.md)", min=1)
    ssr: bool = option(True, "signed square root of the scores; off: the ablation (paper: Alg. 1)")
    seed: int = option(0, "seed of every random choice: retrieval and loudness targets (ours)")
    lufs_range: tuple[float, float] = option(
        DEFAULT_LUFS_RANGE,
        "target loudness range per component, LUFS (ours: EBU R128's -23 LUFS ± 2 LU; the paper gives no bounds)",
    )
    audio_format: str = option("flac", "mixture files (ours: lossless, half the size of WAV)", choices=AUDIO_FORMATS)
    pairs_per_shard: int = option(1000, "pairs per dataset shard (ours)", min=1)
    copy_images: bool = option(False, "also write WebDataset tar shards: image + audio + json (ours)")
    exclude_images: str | None = option(
        None,
        "file of image ids to leave out, one a line (leakage's exclude_images.txt): dropped before "
        "retrieval and counted as filtered 'excluded' (ours: leakage lists are opt-in)",
        fingerprint=False,
        default_text="none",
    )
    exclude_chunks: str | None = option(
        None,
        "file of pool chunk ids never to retrieve, one a line (leakage's exclude_chunks.txt) "
        "(ours: leakage lists are opt-in)",
        fingerprint=False,
        default_text="none",
    )
    device: str = option("auto", "encoder device: auto, cpu, cuda or cuda:N (ours)", fingerprint=False)
    # recorded with the pool's embeddings (their identity), so not part of the dataset's settings
    audio_prep: str = option("torch", AUDIO_PREP_HELP, choices=AUDIO_PREP, fingerprint=False)
    concepts_config: ConceptsConfig = field(
        default_factory=ConceptsConfig, metadata={"help": "the concepts stage (VLMs, prompts, filter)"}
    )

    def __post_init__(self):
        if isinstance(self.lufs_range, list):
            object.__setattr__(self, "lufs_range", tuple(self.lufs_range))
        super().__post_init__()

    def validate(self) -> None:
        lo_hi = check_lufs_range("lufs_range", self.lufs_range, ABSOLUTE_GATE_LUFS)
        object.__setattr__(self, "lufs_range", lo_hi)
        if not isinstance(self.concepts_config, ConceptsConfig):
            raise ConfigError("concepts_config", self.concepts_config, "must be a ConceptsConfig")
