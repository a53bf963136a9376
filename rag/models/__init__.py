"""Models: the ``Generator``/``Judge`` interfaces (``base``), the registry of packaged models and their fitted
scores (``registry``), the factory of the local generator (``factory``), the processor-based choice
(``model_choice``), a model server's client (``openai_generator``) and the embedder (``embedding``). ``local/``
holds the transformers backend's internals.

May import: the ground floor only.
"""
