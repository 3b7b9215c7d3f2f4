"""``letitwag leaderboard ...``: verify submissions, keep a board, render its static site.

A thin layer over ``letitwag.leaderboard``: each subcommand parses options and calls one API
function; rejections arrive as ``UserInputError`` and the CLI shell prints them as one line
with exit code 2.
"""

from __future__ import annotations

from pathlib import Path

from letitwag import cli


def _init(args) -> int:
    from letitwag.leaderboard.board import init_from_reference

    board = init_from_reference(args.board, args.reference, frequency_corpus=args.frequency_corpus,
                                include_paper_models=not args.no_paper_models, title=args.title)
    dataset = board.config.dataset
    excluded = len(board.config.excluded_samples)
    print(f"created board {args.board} for {dataset['id']} revision {dataset['revision']} "
          f"({dataset['num_samples']} samples, {dataset['num_classes']} classes"
          f"{f', {excluded} excluded: not evaluable in the reference run' if excluded else ''})")
    return 0


def _validate(args) -> int:
    from letitwag.leaderboard.board import Board
    from letitwag.leaderboard.validate import validate_submission

    validated = validate_submission(args.submission, Board.open(args.board), plumbing=args.plumbing)
    metrics = validated.results["metrics"]
    note = "" if validated.ranked else f"; listed but not ranked: {validated.not_ranked_reason}"
    if validated.key.task == "t2i":
        headline = f"text-to-image, judge top-1 {metrics['judge_top1']:.4f} under judge {validated.key.judge}"
    elif validated.key.task == "retrieval":
        headline = (f"retrieval on {validated.results['dataset']['id']}, text->image R@1 "
                    f"{metrics['text_to_image_recall@1']:.4f}, image->text R@1 {metrics['image_to_text_recall@1']:.4f}")
        note = "; not stored or ranked by this board yet"
    else:
        headline = f"top-1 {metrics['top1']:.4f}"
    print(f"valid: {validated.key.model} {headline} (every metric recomputed){note}")
    return 0


def _add(args) -> int:
    from letitwag.leaderboard.board import Board
    from letitwag.leaderboard.validate import add_submission

    validated, stored = add_submission(args.submission, Board.open(args.board), plumbing=args.plumbing)
    kind = " as an unranked plumbing run (random weights)" if validated.plumbing else ""
    print(f"added {validated.key.model}{kind} to {stored}")
    return 0


def _submit(args) -> int:
    from letitwag.leaderboard.board import Board
    from letitwag.leaderboard.submit import open_pull_request
    from letitwag.leaderboard.validate import validate_submission

    validated = validate_submission(args.submission, Board.open(args.board))
    url = open_pull_request(validated, args.repo, token=args.token, endpoint=args.endpoint)
    print(f"opened pull request: {url}")
    return 0


def _verify(args) -> int:
    from letitwag.leaderboard.board import Board
    from letitwag.leaderboard.validate import verify_board

    outcomes = verify_board(Board.open(args.board))
    problems = [problem for _, problem in outcomes if problem]
    for problem in problems:
        print(f"FAILED {problem}")
    print(f"{len(outcomes) - len(problems)} of {len(outcomes)} entries verified")
    return 1 if problems else 0


def _build(args) -> int:
    from letitwag.leaderboard.board import Board
    from letitwag.leaderboard.site import build_site

    board = Board.open(args.board) if args.board else Board.paper_only()
    out = build_site(board, args.out)
    print(f"built {out / 'index.html'}")
    return 0


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers, "leaderboard",
        help="verify submissions (every metric recomputed), keep a board, build its static site",
        description="A board is a folder: board.json (the dataset every submission must match), labels.parquet "
        "and submissions/<model>/<revision>/<precision>_<prompts>/. A submission is a harness output folder "
        "(results.json + predictions.parquet) plus submission.json (model name, link, parameters, pretraining data, "
        "includes_let_it_wag_images, license). Classification and text-to-image (`evaluate --task t2i`) runs are "
        "accepted; T2I entries are compared only under the same judge. Retrieval runs (`evaluate --task retrieval`) "
        "are validated (every metric recomputed from the ranks) but not stored or ranked yet.",
        examples="  letitwag leaderboard init --board board/ --reference runs/vit-b-32/\n"
        "  letitwag leaderboard validate runs/my-model/ --board board/\n"
        "  letitwag leaderboard validate runs/my-model-coco/ --board board/   # a retrieval run: checked, not stored\n"
        "  letitwag leaderboard add runs/my-model/ --board board/\n"
        "  letitwag leaderboard add runs/my-generator-t2i/ --board board/   # a text-to-image run\n"
        "  letitwag leaderboard add runs/tiny-random/ --board board/ --plumbing   # unranked random-weights run\n"
        "  letitwag leaderboard verify --board board/\n"
        "  letitwag leaderboard build --board board/ --out site/\n"
        "  letitwag leaderboard build --out site/          # the paper's 40 models only",
    )
    commands = parser.add_subparsers(dest="leaderboard_command", metavar="SUBCOMMAND", required=True)

    init = cli.add_command(
        commands, "init", help="create a board whose dataset is that of a trusted, complete reference run",
        description="Copies the dataset identity (id, split, revision, fingerprint, classes) from the reference "
        "run's results.json and its per-sample labels into the board; every later submission must match them.",
        examples="  letitwag leaderboard init --board board/ --reference runs/vit-b-32/")
    init.add_argument("--board", required=True, type=Path, help="folder to create the board in")
    init.add_argument("--reference", required=True, type=Path,
                      help="harness output folder (results.json + predictions.parquet) of a full run on the dataset")
    init.add_argument("--frequency-corpus", default="laion400m",
                      help="paper corpus whose matched counts define the rarest / most frequent concept bins")
    init.add_argument("--no-paper-models", action="store_true", help="do not show the paper's 40 reported models")
    init.add_argument("--title", default="Let it Wag! leaderboard", help="site title")
    init.set_defaults(handler=_init)

    for name, handler, summary, example in (
        ("validate", _validate, "check a submission without changing anything (exit 0 = valid)",
         "  letitwag leaderboard validate runs/my-model/ --board board/"),
        ("add", _add, "validate, then store the submission in the board atomically",
         "  letitwag leaderboard add runs/my-model/ --board board/"),
        ("submit", _submit, "validate, then open a pull request on the board's Hugging Face dataset repo",
         "  letitwag leaderboard submit runs/my-model/ --board board-clone/ --repo my-org/let-it-wag-board"),
    ):
        command = cli.add_command(
            commands, name, help=summary,
            description=f"{summary}. Checks: schema and version; dataset id/split/revision/fingerprint/classes equal "
            "the board's; every sample predicted once with the board's labels and valid distinct class ids; every "
            "metric recomputed and within the board's tolerance; no duplicate (model, revision, precision, prompt "
            "set); sanitised names and links; size limits; no NaN/Infinity; no --limit or random-weights runs (these only with --plumbing, unranked).",
            examples=example)
        command.add_argument("submission", type=Path,
                             help="folder with results.json, predictions.parquet and submission.json")
        command.add_argument("--board", required=True, type=Path,
                             help="board folder (for submit: a local clone of the board repo)")
        if name != "submit":
            command.add_argument(
                "--plumbing", action="store_true",
                help="accept ONLY a random-weights classification run, as an unranked entry in the site's separate "
                "'Plumbing runs' section (never ranked, not in the table or scatter); every other check still runs. "
                "Without it random-weights runs are refused")
        if name == "submit":
            command.add_argument("--repo", required=True, help="the board's Hugging Face dataset repo, ORG/NAME")
            command.add_argument("--token", default=None,
                                 help="Hugging Face token (default: the one saved by `hf auth login` or HF_TOKEN)")
            command.add_argument("--endpoint", default=None, help="Hub endpoint URL (default: huggingface.co)")
        command.set_defaults(handler=handler)

    verify = cli.add_command(
        commands, "verify", help="re-check every stored entry (all metrics recomputed, files unchanged)",
        description="Runs every validate check on every entry of the board and compares the files with the "
        "hashes recorded when they were added. Exit 0 when all pass, 1 when any fails (one line each).",
        examples="  letitwag leaderboard verify --board board/")
    verify.add_argument("--board", required=True, type=Path, help="board folder")
    verify.set_defaults(handler=_verify)

    build = cli.add_command(
        commands, "build", help="render the board as a static site (HTML + CSS + a little JS, works from file://)",
        description="Writes index.html (sortable, filterable table; Let it Wag! vs ImageNet scatter; T2I tables, one "
        "per judge), submit.html, one page per model, board.csv, t2i.csv and board.json. Without --board: the "
        "paper's 40 models.",
        examples="  letitwag leaderboard build --board board/ --out site/\n  letitwag leaderboard build --out site/")
    build.add_argument("--board", type=Path, default=None, help="board folder (default: the paper's models only)")
    build.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically)")
    build.set_defaults(handler=_build)
