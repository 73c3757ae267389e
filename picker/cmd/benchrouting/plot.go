package main

import (
	"fmt"
	"image/color"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotTTFT draws the distribution of time to first token of every row, one
// line each, on a log time axis: where the lines part is where policies
// differ (the tail is on the right).
func plotTTFT(rows []result, path string) error {
	p := plot.New()
	p.Title.Text = "Time to first token, CDF"
	p.X.Label.Text = "TTFT (ms, log scale)"
	p.Y.Label.Text = "fraction of requests"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Millimeter
	p.Legend.YOffs = 3 * vg.Millimeter
	p.Add(plotter.NewGrid())
	for i, r := range rows {
		if len(r.ttft) == 0 {
			continue
		}
		d := slices.Clone(r.ttft)
		slices.Sort(d)
		pts := make(plotter.XYs, len(d))
		for j, v := range d {
			pts[j] = plotter.XY{X: max(1, float64(v)/float64(time.Millisecond)), Y: float64(j+1) / float64(len(d))}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(r.name, l)
	}
	return p.Save(9*vg.Inch, 6*vg.Inch, path)
}

// plotLoad draws, for every row, the requests in flight at each rank over
// the measured window: one panel per row, one line per rank, all on the
// same scale. An even spread is a tight bundle of lines.
func plotLoad(rows []result, path string) error {
	var panels []*plot.Plot
	top := 1.0
	for _, r := range rows {
		for _, row := range r.load.perRank {
			top = max(top, slices.Max(row))
		}
	}
	for _, r := range rows {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (CV %.2f)", r.name, r.load.cv())
		p.X.Label.Text = "s"
		p.Y.Label.Text = "in flight"
		p.Y.Min, p.Y.Max = 0, top
		ranks := 0
		if len(r.load.perRank) > 0 {
			ranks = len(r.load.perRank[0])
		}
		// Pooled rounds follow each other in the series: draw the first.
		first := len(r.load.at)
		for j := 1; j < len(r.load.at); j++ {
			if r.load.at[j] < r.load.at[j-1] {
				first = j
				break
			}
		}
		if len(r.seeds) > 1 {
			p.Title.Text = fmt.Sprintf("%s (CV %.2f over %d seeds; seed %d drawn)", r.name, r.load.cv(), len(r.seeds), r.seeds[0])
		}
		for k := range ranks {
			pts := make(plotter.XYs, first)
			for j := range first {
				pts[j] = plotter.XY{X: r.load.at[j].Seconds(), Y: r.load.perRank[j][k]}
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(k)
			l.Width = vg.Points(0.8)
			p.Add(l)
		}
		panels = append(panels, p)
	}
	const cols = 2
	nRows := (len(panels) + cols - 1) / cols
	if nRows == 0 {
		return nil
	}
	grid := make([][]*plot.Plot, nRows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		grid[i/cols][i%cols] = p
	}
	w, h := 12*vg.Inch, vg.Length(nRows)*2.6*vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	dc.SetColor(color.White)
	tiles := draw.Tiles{Rows: nRows, Cols: cols, PadX: vg.Millimeter, PadY: vg.Millimeter, PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(grid, tiles, dc)
	for i := range grid {
		for j := range grid[i] {
			if grid[i][j] != nil {
				grid[i][j].Draw(canvases[i][j])
			}
		}
	}
	return saveImage(img, path)
}
