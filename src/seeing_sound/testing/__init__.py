"""Everything tests, benchmarks and the demo share, and nothing else: no test downloads anything.

- :mod:`~seeing_sound.testing.signals`: tones, noise, audio files in any format.
- :mod:`~seeing_sound.testing.sounds`: a library of synthesized sound effects with honest descriptions.
- :mod:`~seeing_sound.testing.models`: tiny random twins of every real checkpoint, in the hub layouts.
- :mod:`~seeing_sound.testing.twin_sizes`: the tiny twins' sizes (AST width and frames, AudioSet labels).
- :mod:`~seeing_sound.testing.data`: learnable sound/image pair datasets, feature sets, bad image files.
- :mod:`~seeing_sound.testing.servers`: a local OpenAI-compatible chat-completions server.
- :mod:`~seeing_sound.testing.clip_proof`: a tiny CLIP trained in seconds on a synthetic world of
  photos and drawings, to prove the grounding and depiction checks offline.
- :mod:`~seeing_sound.testing.hub_cache`: an offline Hugging Face cache in which twins answer to real hub ids.
"""
