"""The data the pipeline's stages hand to each other, typed, at the bottom of the import graph:

- `source`: where a component's code comes from, as the lock records it (PyPI, git, a local path);
- `lock`: the lock (PEP 751 pylock.toml plus stackcrate's table), its packages and components;
- `built`: a component's venv once built (what every artifact writer takes);
- `artifacts`: artifacts.json, the index of a build's output folder (one model, one writer, one reader).
"""
