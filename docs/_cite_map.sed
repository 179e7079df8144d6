# Citations of the shared SPEC.md / DESIGN.md (not in the repository) -> the project's own docs.
# docs/arithmetic.md keeps SPEC.md's section numbers and docs/architecture.md keeps DESIGN.md's
# section titles, so every citation maps mechanically. Run from the repository root (GNU sed):
#   grep -rlE 'SPEC|DESIGN|README "Bad input"|README\)' engine viewer tests benchmarks \
#     | xargs sed -i -f docs/_cite_map.sed
# then check: grep -rnE '\bSPEC\b|SPEC\.md|DESIGN' engine viewer tests benchmarks  (only _SPEC and
# _ASPECT, names in engine/data/synthetic, should be left).

# "SPEC.md section 8", "SPEC.md 2.7", "SPEC.md 2.1-2.2", "SPEC.md 2.6, 8, 9", a bare "SPEC.md"
s/SPEC\.md/docs\/arithmetic.md/g
# "SPEC 1", "SPEC 6:", "SPEC 9" (without .md; never matches the names _SPEC or _ASPECT)
s/\bSPEC \([0-9]\)/docs\/arithmetic.md section \1/g
# 'DESIGN.md "Public interface"', 'DESIGN.md "How data flows"', 'DESIGN.md "Bad input and faults"',
# "Targets (DESIGN.md)"
s/DESIGN\.md/docs\/architecture.md/g
# "DESIGN target: at most 50 KB per image", "the DESIGN target is ..."
s/\bDESIGN target/docs\/architecture.md target/g
# README sections whose figures moved out of README.md
s/README "Bad input"/docs\/results.md "TLift without re-ranking"/g
s/(benchmarks\/bench_scale\.py; README)/(benchmarks\/bench_scale.py; benchmarks\/README.md)/g
s/Market-scale synthetic set (README)/Market-scale synthetic set (benchmarks\/README.md)/g
