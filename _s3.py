import warnings, time, numpy as np, tempfile, os
import construct
from construct import programs, reference
t=time.time()
import construct.hf as hf, construct.tl as tl
print("import", time.time()-t)
rng=np.random.default_rng(1)
prog = programs.ridge(2, 4, 0.5)
net = construct.compile(prog, x_max=2.0, y_max=5.0, architecture="gpt2")
X = rng.uniform(-2,2,size=(4,2)); y = rng.uniform(-5,5,size=4); q = rng.uniform(-2,2,size=2)
r = reference.ridge(X,y,q,lam=0.5)
d = tempfile.mkdtemp()
hf.save_pretrained(net, d + "/ck")
print(os.listdir(d + "/ck"))
for impl in ["eager", "sdpa"]:
    m = hf.from_pretrained(d + "/ck", attn_implementation=impl)
    p = hf.predict(m, X, y, q)
    print(impl, np.abs(p - r).max())
t=time.time()
model = tl.to_hooked_transformer(net)
p, cache = tl.run_with_cache(model, net, X, y, q)
print("tl", np.abs(p-r).max(), time.time()-t)
tr = net.trace(X, y, q)
P = net.program.layout.width
worst = max(np.abs(cache[f"blocks.{l}.hook_resid_post"][0].numpy().T[:P] - tr.states[l+1][:P]).max() for l in range(net.gpt2.depth))
print("resid", worst)
