"""``icl-construct export``: compile a network and write it, as one .npz file (``construct.export``) or as a
Hugging Face checkpoint of GPT-2 blocks (``construct.runtimes.hf``, the extra 'runtimes')."""

from __future__ import annotations

from ..export import save
from . import budget, network, shared
from .shared import UsageError


def _destination(args) -> tuple:
    """The path to write, checked before any work: a new (or empty) directory for --format hf, else a file that
    ends in .npz."""
    out = args.output
    if args.format == "hf":
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"-o: {out} exists and is not an empty directory; --format hf writes a new directory")
        return out if out.exists() else shared.output(out, "-o")
    if out.is_dir():
        raise UsageError(f"-o: {out} is a directory; name a file in it, e.g. {out / 'net.npz'}")
    return shared.output(out if out.suffix == ".npz" else out.with_name(out.name + ".npz"), "-o")


def _run(args) -> int:
    hf = args.format == "hf"
    out = _destination(args)
    network.affordable(args, "export", args.n, args.d,
                       lambda net, d_: budget.built(net, args.calibrate, d_, passes=0) + budget.saving(net))
    program = network.program(args, args.d, args.n)
    with shared.progress(args, 3, f"export ({program.name})") as bar:
        tasks = network.calibration_tasks(program.d, program.n, args.calibrate, args.seed)
        net = network.compiled(args, program, tasks, bar, args.dtype, architecture="gpt2" if hf else "paper")
        if hf:
            try:
                from ..runtimes import hf as runtime
            except ImportError as err:
                raise UsageError(f"--format hf needs the extra 'runtimes' (pip install 'icl-construct[runtimes]'):"
                                 f" {err}") from None
        with shared.writing(out, "-o"):
            path = runtime.save_pretrained(net, out) if hf else save(net, out)
        bar.update()
    size = sum(p.stat().st_size for p in path.iterdir()) if hf else path.stat().st_size
    result = {"path": str(path), "bytes": size, "format": args.format, "algo": program.name, "d": program.d,
              "n": program.n, "params": network.params(program), "dtype": args.dtype, "size": net.size()}
    if args.json:
        shared.print_json(result)
        return 0
    print(f"wrote {path} ({result['bytes']:,} bytes): {program.name}, d = {program.d}, n = {program.n}, "
          f"{args.dtype}; {network.size_text(net)}")
    if hf:
        print(f"load it with construct.hf.from_pretrained({str(path)!r}), or its GPT-2 part with "
              f"transformers.GPT2Model.from_pretrained({str(path)!r}, dtype=torch.{args.dtype})")
    else:
        print(f"load it with construct.load({str(path)!r}); the manifest inside: unzip -p {path} manifest.json")
    return 0


def _arguments(parser) -> None:
    network.algorithm(parser)
    shared.sizes(parser, 3, 6)
    parser.add_argument("-o", "--output", type=shared.path, required=True, metavar="PATH",
                        help="the file to write (.npz is appended if missing); with --format hf, a new directory")
    parser.add_argument("--format", choices=("npz", "hf"), default="npz",
                        help="npz (default): one .npz file; hf: a Hugging Face checkpoint directory of GPT-2 blocks")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="the weights' floating-point type (default float64)")
    network.calibration(parser)
    shared.seed(parser, "the calibration tasks")
    shared.json_output(parser, "where the file went and the network's size")
    shared.limits(parser)


COMMAND = shared.Command(
    name="export", summary="compile a network and write its weights: one .npz, or a Hugging Face checkpoint",
    description="""
Compile a transformer that carries out --algo on d inputs and n examples,
for a domain calibrated on --calibrate random tasks (x ~ N(0, I),
w ~ N(0, I), y = w^T x) widened by --margin, and write it to disk.

--format npz (the default) writes one .npz file: the weight arrays and a
manifest (the program, its parameters, the domain's bounds, the sizes), which
construct.load reads back bit for bit as a network that predicts and
certifies its answers. --format hf writes the network compiled for GPT-2
blocks as a checkpoint directory that transformers.GPT2Model.from_pretrained
loads, and construct.hf.from_pretrained with its read-in and read-out (needs
pip install 'icl-construct[runtimes]').""",
    results="""
The file or directory -o names is written, and one line on stdout says where
it went, its size in bytes and the network's depth and width (--json: the
same as JSON).""",
    examples=("icl-construct export --algo ridge -d 4 -n 16 -o ridge.npz",
              "icl-construct export --algo sgd -d 2 -n 4 --alpha 0.02 --dtype float32 -o sgd.npz",
              "icl-construct export --format hf --algo ridge -d 4 -n 8 -o ridge-gpt2"),
    arguments=_arguments, run=_run, details=network.algorithms_text)
