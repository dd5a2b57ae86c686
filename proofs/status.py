"""How far each proof reaches: for all values, at the sizes it names, or in the ideal limit.

A proof's statement holds under its hypotheses (``Proof.hypotheses``). This
table says what kind of claim that is, so that nothing is called "proved"
beyond what a proof checks; ``python -m proofs`` prints it beside each proof,
a test requires an entry for every registered proof, and another that no
document calls a claim proved for all values that this table labels
otherwise. Claims no proof covers (the rounding of a run) are *measured*; the
walkthrough lists them with the tests that measure them.
"""

ALL = "proved for all values"
SIZES = "proved at the sizes named"
LIMIT = "proved in the ideal limit"
MEASURED = "measured"

STATUS = {
    # lemmas: every value of the variables under the stated hypotheses; the two expansions are P -> oo
    "gelu_product_erf": LIMIT,
    "gelu_product_tanh": LIMIT,
    "gelu_product_bound": ALL,
    "gelu_bypass": ALL,
    "gelu_slope": ALL,
    "attention_selection": ALL,
    "uniform_attention": ALL,
    "layer_norm_bypass": ALL,
    "layer_norm_division": ALL,
    # the compiled layers: the weights of the networks proofs/layers.py builds
    "layer_mov": SIZES,
    "layer_aff": SIZES,
    "layer_avg": SIZES,
    "layer_mul": SIZES,
    "layer_div": SIZES,
    "layer_clears_dirty_rows": SIZES,
    "layer_programs": SIZES,
    "layer_programs_fused": SIZES,
    # the programs on symbolic prompts
    "theorem1_sgd_step": ALL,  # every d: the chains on registers of any size (lifted.py)
    "theorem2_sherman_morrison_step": ALL,
    "sherman_morrison_identity": ALL,
    "rls_identity": ALL,
    "newton_schulz_product": ALL,
    "newton_schulz_convergence": ALL,
    "sgd_program": SIZES,
    "ridge_program": SIZES,
    # the domain
    "domain_am_gm": ALL,
    "domain_ridge_weights": SIZES,
    "domain_inverse_bounds": SIZES,
    "domain_corr_gain": SIZES,
    "domain_sgd_contraction": SIZES,
    "domain_ridge_columns": SIZES,
    "domain_formulas": SIZES,
    # the printed chains
    "erratum_theorem1_penalty_sign": SIZES,
    "erratum_theorem2_final_shape": SIZES,
    "erratum_mov_column_order": SIZES,
    # the certificate's inequalities
    "division_remainder": ALL,
    "product_remainder": ALL,
    "residual_certificate": ALL,
    "rls_backward_error": ALL,
    "gelu_slope_maximum": ALL,
    "bypass_mills": ALL,
    "product_truncation_at_size": ALL,
    "gelu_taylor_remainders": ALL,
}
