"""Other runtimes for the constructions: Hugging Face transformers (``hf``) and TransformerLens (``tl``).

Both run a network compiled for standard GPT-2 blocks
(``construct.compile(..., architecture="gpt2")``, ``construct.compiler.gpt2``)
unmodified: the weights become a ``GPT2Model`` checkpoint or a
``HookedTransformer`` state dict, and nothing of this project runs inside
them. They need the optional extra ``runtimes`` (torch, transformers,
transformer_lens, safetensors); importing ``construct`` imports none of it,
and the public names ``construct.hf`` and ``construct.tl`` import their
module on first use.
"""
