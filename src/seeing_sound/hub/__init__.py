"""Release to the Hugging Face Hub (paper A.1): export a pairs dataset as Parquet with a dataset card, and
push a dataset or a trained run. ``datasets``/``huggingface_hub`` (extra ``[hub]``) are imported only when
a function needs them."""

from seeing_sound.hub.export import ExportConfig, ExportReport, export_hf

__all__ = ["ExportConfig", "ExportReport", "export_hf"]
