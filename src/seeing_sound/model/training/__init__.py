"""Training AudioPixArt: the recipe (:func:`~seeing_sound.model.training.recipe.train`), its settings
(:class:`~seeing_sound.model.training.config.TrainConfig`), the data it reads (feature sets, several
datasets, exclusions, the pair-score threshold), resume and the validation grids.

| module | holds |
| --- | --- |
| ``config`` | ``TrainConfig``: every training setting (no torch: the CLI reads its defaults) |
| ``sets`` | the training datasets: feature sets, several datasets together, compatibility checks |
| ``data`` | batches: precomputed features or AST tokens / VAE latents computed in the run; the batch plan |
| ``exclude`` | exclusion lists (leakage's ``exclude_pairs.txt``) applied to the rows |
| ``pair_scores`` | ``seeing-sound score``'s file format and the ``min_pair_score`` threshold on it |
| ``resume`` | which checkpoint to resume, which settings must match, the run record |
| ``samples`` | validation grids every ``sample_every`` steps |
| ``recipe`` | ``TrainRecipe`` and ``train(cfg)``: the loop, checkpoints, the run's output folder |

Import the module you need (``from seeing_sound.model.training.recipe import train``): this package
file imports nothing, so reading ``TrainConfig`` never loads torch.
"""
