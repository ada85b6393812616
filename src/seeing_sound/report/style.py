"""The report page's stylesheet: plain, readable, no external fonts or scripts."""

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1.5rem; color: #1d1f21; background: #f6f7f9; line-height: 1.4; }
h1 { margin: 0 0 .3rem; font-size: 1.7rem; }
h2 { margin: 2rem 0 .8rem; font-size: 1.3rem; border-bottom: 2px solid #d7dbe0; padding-bottom: .2rem; }
h3 { margin: 0 0 .4rem; font-size: 1.05rem; word-break: break-all; }
.muted { color: #5f6670; font-size: .9rem; }
.pair { background: #fff; border: 1px solid #d7dbe0; border-radius: 8px; padding: 1rem; margin: 0 0 1.2rem;
        display: grid; grid-template-columns: 220px minmax(0, 1fr); gap: 1.2rem; }
.pair .image img { width: 100%; height: auto; border-radius: 4px; border: 1px solid #e3e6ea; }
.missing { background: #fff4e5; border: 1px dashed #e0a040; padding: .6rem; border-radius: 4px; font-size: .9rem; }
.mixture { margin: .6rem 0; }
audio { width: 100%; max-width: 360px; height: 34px; }
table.components audio { width: 180px; }
table.components td:nth-child(2) { min-width: 15em; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; background: #fff; }
th, td { text-align: left; vertical-align: top; padding: .35rem .45rem; border-bottom: 1px solid #eceef1; }
th { background: #f0f2f5; font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.concept { font-weight: 600; }
.tag { display: inline-block; background: #eef3fb; color: #2a4a7a; border-radius: 3px; padding: 0 .3rem;
       font-size: .78rem; margin-right: .2rem; }
.thumb { max-width: 120px; max-height: 90px; border-radius: 3px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .2rem 0; }
dl.kv dt { font-weight: 600; } dl.kv dd { margin: 0; } dl.kv dl.kv { margin: 0; }
img.spec { display: block; width: 160px; height: 64px; margin-top: .25rem; border-radius: 3px;
           image-rendering: pixelated; }
.mixture img.spec { width: 320px; height: 96px; }
nav { margin: .4rem 0; font-size: .95rem; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 1rem; margin-top: 1rem; }
figure.plot { margin: 0; background: #fff; border: 1px solid #d7dbe0; border-radius: 8px; padding: .4rem; }
figure.plot svg { width: 100%; height: auto; font-family: inherit; }
svg .title { font-size: 13px; font-weight: 600; fill: #1d1f21; }
svg .note, svg .tick { font-size: 10px; fill: #5f6670; }
svg .label { font-size: 11px; fill: #1d1f21; }
svg .axis { stroke: #8a9099; stroke-width: 1; }
svg .diag { stroke: #8a9099; stroke-dasharray: 4 3; }
#search { font-size: 1rem; padding: .45rem .6rem; width: min(100%, 28rem); border: 1px solid #b9bfc7;
          border-radius: 6px; }
.chips { margin: .5rem 0; }
button.chip { border: 1px solid #c9d4e6; background: #eef3fb; color: #2a4a7a; border-radius: 999px;
              padding: .15rem .6rem; margin: 0 .3rem .3rem 0; font-size: .85rem; cursor: pointer; }
#results li { margin: .2rem 0; }
@media (max-width: 800px) { .pair { grid-template-columns: 1fr; } }
"""
