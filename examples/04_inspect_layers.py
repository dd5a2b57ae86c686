"""Example 4: look inside a compiled network, layer by layer.

    python examples/04_inspect_layers.py [OUTPUT_DIR]

Every layer carries out one instruction: it changes the register the
instruction writes, in every token, and (up to rounding) nothing else. We
print what each layer does and how accurate the compiler predicts it to be,
follow one register through the residual stream beside the exact machine,
and draw the weights of one layer and the whole stream (PNG, into
OUTPUT_DIR, default examples/output/).
"""

import sys
from pathlib import Path

import numpy as np

import construct
from construct import plots, programs
from construct.tasks import gaussian_tasks

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "output"
out.mkdir(parents=True, exist_ok=True)

program = programs.ridge(d=2, n=2, lam=0.5)
net = construct.compile(program, construct.Bounds.calibrate(program, gaussian_tasks(2, 2, 64, seed=0)),
                        fuse=False)  # one layer per instruction, to read against the program
print(f"ridge, d = 2, n = 2: {net.size()['layers']} layers, residual width {net.size()['residual_width']}")
print("the rows of the residual stream:", ", ".join(net.layout.labels))

# What each layer does, and the bound the compiler proves for its error.
print(f"\n{'layer':>5}  {'instruction':<40} {'predicted error':>15}")
for layer in net.layers:
    print(f"{layer.index:>5}  {layer.instruction:<40} {layer.predicted_error:>15.1e}")

# Run one task and keep the hidden state after every layer: states[l] is (rows, tokens).
task = gaussian_tasks(2, 2, 1, seed=7)[0]
trace = net.trace(*task)
exact = program.run(*task, trace=True)  # the exact machine's states, same rows

# Follow Ainv (2x2, flattened) at the token y~2 (column 3) through the layers that write it.
column = 3
rows = net.layout.rows("Ainv")
print("\nAinv at token y~2 after each layer that writes it (transformer | exact machine):")
for layer, ins in zip(net.layers, program.instructions):
    if ins.writes == "Ainv":
        got, want = trace.states[layer.index, rows, column], exact[layer.index][rows, column]
        print(f"  layer {layer.index:>2}: {np.round(got, 6)} | {np.round(want, 6)}"
              f"   |difference| <= {np.abs(got - want).max():.1e}")

# Did any layer change a register it does not write? Compare consecutive states.
untouched = max(np.abs(trace.states[l, net.layout.rows(name)] - trace.states[l - 1, net.layout.rows(name)]).max()
                for l, ins in enumerate(program.instructions, 1) for name in program.layout.names
                if name != ins.writes)
print(f"\nlargest change of a register by a layer that does not write it: {untouched:.1e}")

# Pictures (matplotlib is the optional extra 'plots').
div = next(layer.index for layer in net.layers if layer.instruction.startswith("div"))
try:
    plots.weights_heatmap(net, div, out / "weights_div_layer.png")
    plots.residual_stream(trace, out / "residual_stream.png")
except plots.PlotsUnavailable as err:
    print(f"no pictures: {err}")
else:
    print(f"wrote {out / 'weights_div_layer.png'} (layer {div}) and {out / 'residual_stream.png'}")
