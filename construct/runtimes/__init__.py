"""Other runtimes for the constructions: Hugging Face transformers (``hf``) and TransformerLens (``tl``).

Both run a network compiled for standard GPT-2 blocks
(``construct.compile(..., architecture="gpt2")``, ``construct.compiler.gpt2``)
unmodified: the weights become a ``GPT2Model`` checkpoint, or TransformerLens'
model (a ``HookedTransformer`` with TransformerLens 3.x, a ``TransformerBridge``
around ``GPT2LMHeadModel`` with 4.x), and nothing of this project runs inside
them. Their answers are certified a posteriori from what they returned
(``certified``). They need the optional extra ``runtimes`` (torch,
transformers, transformer_lens, safetensors); importing ``construct`` imports
none of it, and the public names ``construct.hf`` and ``construct.tl`` import
their module on first use.
"""
