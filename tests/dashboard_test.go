package tests

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/web"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromium finds the browser; CI installs it, so there it must be found.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium: .ci/run installs Debian's chromium package")
	}
	t.Skip("no chromium installed (apt-get install chromium)")
	return ""
}

// openBrowser starts headless Chromium with one tab; it is stopped when the
// test ends, or after two minutes.
func openBrowser(t *testing.T, browser string) context.Context {
	t.Helper()
	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.Flag("no-sandbox", true), chromedp.Flag("headless", true), chromedp.WindowSize(1400, 1000))...)
	ctx, stop := chromedp.NewContext(alloc)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancel(); stop(); stopAlloc() })
	return ctx
}

// do runs browser actions, failing the test with what on an error.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshot saves the page as artifacts/dashboard/<name>.png.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shots := filepath.Join("..", "artifacts", "dashboard")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDashboard_Chromium drives the dashboard in headless Chromium: a
// running workflow's progress advances; pause stops new tasks from starting;
// resume lets it finish; a task is cancelled from the page; a job is
// submitted from the page, and a bad one shows its error. Screenshots of
// each step go to artifacts/dashboard.
func TestDashboard_Chromium(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var mu sync.Mutex
	var starts []time.Time
	var blk blocker
	e.agent("worker", 2, map[string]agent.Handler{
		"nap": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			mu.Lock()
			if t.Workflow == "dash" {
				starts = append(starts, time.Now())
			}
			mu.Unlock()
			select {
			case <-time.After(300 * time.Millisecond):
				return "rested", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
		"block": blk.handler(),
		"bad": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
			return nil, agent.Permanent(errors.New("broken input"))
		}),
	})
	_, hs := e.webServer(nil, web.Config{Dashboard: true})
	e.waitReady()

	ctx := openBrowser(t, browser)
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) { t.Helper(); do(t, ctx, what, actions...) }
	shot := func(name string) { t.Helper(); screenshot(t, ctx, name) }
	pct := func(wf string) float64 {
		t.Helper()
		r, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`tr[data-wf="`+wf+`"] td.progress`), "data-pct"))
		if err != nil {
			t.Fatalf("read progress: %v", err)
		}
		f, _ := strconv.ParseFloat(r.Value, 64)
		return f
	}
	xpath := func(q string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.Search(q)) }
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	statusIs := func(wf, status string) chromedp.Action[chromedp.Void] {
		return xpath(fmt.Sprintf(`//tr[@data-wf=%q]/td[contains(@class,"status") and text()=%q]`, wf, status))
	}
	// clickUntil clicks a button until the workflow shows a status: the
	// tables are redrawn every second, so a click can land on a row that
	// was just replaced.
	clickUntil := func(what, button, wf, status string) {
		t.Helper()
		for attempt := 1; ; attempt++ {
			// The table is redrawn every second: the button found can be
			// gone by the click ("Could not find node"), a miss to retry.
			err := chromedp.Do(ctx, chromedp.Click(css(button)))
			if err == nil {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = chromedp.Do(actx, statusIs(wf, status))
				cancel()
			}
			if err == nil {
				return
			}
			if attempt == 4 {
				t.Fatalf("%s: the workflow never showed %s: %v", what, status, err)
			}
		}
	}

	// The page is open and live before the workflow starts, and the
	// workflow is long enough (40 naps of 300 ms on 2 slots: 6 s) to be
	// watched advancing and then paused from the page.
	run("open the dashboard", chromedp.Navigate(hs.URL), xpath(`//*[@id="conn" and text()="live"]`))
	naps := make([]int, 40)
	wf := e.submit(map[string]any{"id": "dash", "steps": []map[string]any{{"id": "n", "type": "nap", "split": 1, "input": naps}}})
	run("see the workflow", chromedp.WaitVisible(css(`tr[data-wf="dash"]`)))

	// 1. Progress advances.
	first := pct(wf)
	waitFor(t, 30*time.Second, "the progress bar to advance", func() bool { p := pct(wf); return p > first && p < 100 })
	shot("1-progress")

	// 2. Pause: no task of it starts after a second.
	clickUntil("click pause", `tr[data-wf="dash"] button[data-action="pause"]`, wf, "paused")
	run("see the pause confirmed", chromedp.WaitVisible(css(`#message.ok`)))
	paused := time.Now()
	shot("2-paused")
	// Watch for starts over 1.5s: a task started within the first second
	// was already under way when the page's request reached the planner.
	waitFor(t, 5*time.Second, "an observation window of 1.5s", func() bool { return time.Since(paused) > 1500*time.Millisecond })
	mu.Lock()
	late := 0
	for _, s := range starts {
		if s.After(paused.Add(time.Second)) {
			late++
		}
	}
	n := len(starts)
	mu.Unlock()
	if late > 0 || n >= len(naps) {
		t.Fatalf("%d tasks started more than 1s after the pause (%d of %d started)", late, n, len(naps))
	}

	// 3. Resume: it finishes.
	// A click has done its part once the workflow runs again; finishing
	// the rest takes as long as the machine needs (a loaded CI machine
	// needed more than the 5 s a click is given).
	clickUntil("click resume", `tr[data-wf="dash"] button[data-action="resume"]`, wf, "running")
	cctx, cancelDone := context.WithTimeout(ctx, 2*time.Minute)
	if err := chromedp.Do(cctx, statusIs(wf, "completed")); err != nil {
		t.Fatalf("resumed, but the page never showed completed: %v", err)
	}
	cancelDone()
	if p := pct(wf); p != 100 {
		t.Errorf("progress %v after completion", p)
	}
	shot("3-resumed")

	// 4. Cancel a running task from the page.
	e.submit(map[string]any{"id": "dash-cancel", "steps": []map[string]any{{"id": "b", "type": "block"}, {"id": "after", "type": "nap", "after": []string{"b"}}}})
	waitFor(t, 30*time.Second, "the blocking task to run", func() bool { return blk.runningOn()["dash-cancel/b"] != "" })
	run("cancel from the page",
		chromedp.SendKeys(css(`#cancel-wf`), "dash-cancel"), chromedp.SendKeys(css(`#cancel-task`), "b"),
		chromedp.Click(css(`#cancel-btn`)),
		xpath(`//p[@id="message" and contains(@class,"ok") and contains(., "cancelled: b; dependents: after")]`))
	waitFor(t, 5*time.Second, "the cancelled handler to stop", func() bool { _, ok := blk.stoppedAt("dash-cancel/b"); return ok })
	shot("4-cancelled")

	// 5. Submit a job from the page; a bad one shows its error.
	run("submit from the page",
		chromedp.SetValue(css(`#submit-job`), `{"id": "from-page", "steps": [{"id": "n", "type": "nap", "split": 1, "input": [1, 2, 3]}]}`),
		chromedp.Click(css(`#submit-btn`)),
		xpath(`//p[@id="message" and contains(@class,"ok") and contains(., "workflow from-page, 3 tasks")]`))
	if out := e.final("from-page", time.Minute); out.Status != events.OutcomeSuccess {
		t.Errorf("job submitted from the page: %s", out.Status)
	}
	run("see it complete", statusIs("from-page", "completed"))
	shot("5-submitted")
	run("submit a bad job",
		chromedp.SetValue(css(`#submit-job`), `{"steps": [{"id": "a", "type": "nap", "after": ["ghost"]}]}`),
		chromedp.Click(css(`#submit-btn`)),
		xpath(`//p[@id="message" and contains(@class,"error") and contains(., "no step is called")]`))
	shot("6-error-shown")

	// 7. An escalated workflow shows as needing attention, and is
	// accepted from the page: it finishes partial.
	esc := e.submit(map[string]any{"id": "dash-esc", "on_threshold_missed": map[string]any{"escalate": map[string]any{}},
		"steps": []map[string]any{{"id": "x", "type": "bad", "retries": 0}, {"id": "y", "type": "nap"}}})
	run("see it need attention", statusIs(esc, events.WorkflowNeedsAttention))
	shot("7-needs-attention")
	clickUntil("click accept", `tr[data-wf="dash-esc"] button[data-action="resolve-accept"]`, esc, "completed")
	if out := e.final(esc, 30*time.Second); out.Status != events.OutcomePartial {
		t.Errorf("accepted from the page: %s", out.Status)
	}
	shot("8-accepted")
}

// TestDashboard_ChromiumBasicAuth serves the dashboard with --http-auth and
// drives it in headless Chromium: without credentials, or with wrong ones,
// the page is refused (401) and nothing of it renders; with them (sent on
// every request of the tab, as a browser does once the user has answered
// its prompt) the page loads, its live stream connects, it shows the
// workflows, and pause and resume clicked on the page go through the
// authenticated API to the planner.
func TestDashboard_ChromiumBasicAuth(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var mu sync.Mutex
	var starts []time.Time
	e.agent("worker", 2, map[string]agent.Handler{
		"nap": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			select {
			case <-time.After(200 * time.Millisecond):
				return "rested", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
	})
	const user, password = "ops", "s3cret:with colon"
	_, hs := e.webServer(nil, web.Config{Dashboard: true, Auth: user + ":" + password})
	e.waitReady()
	ctx := openBrowser(t, browser)
	authorize := func(user, password string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tab *chromedp.Target) error {
			basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
			_, err := cdp.Call(ctx, tab, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": basic}})
			return err
		})
	}
	// refused checks that the page is refused: Chromium will not show it
	// (it has no valid credentials to answer the server's challenge), and
	// fetched from a page of the same origin that needs none (/metrics),
	// the page and the API answer 401.
	refused := func(what string) {
		t.Helper()
		err := chromedp.Do(ctx, chromedp.Navigate(hs.URL))
		var le *chromedp.LoadError
		if !errors.As(err, &le) || le.ErrorText != "net::ERR_INVALID_AUTH_CREDENTIALS" {
			t.Fatalf("%s: %v; want Chromium to refuse it for want of credentials", what, err)
		}
		do(t, ctx, what+": open /metrics", chromedp.Navigate(hs.URL+"/metrics"))
		// "omit": the browser's own credentials stay out, and so does its
		// prompt for them, which headless Chromium would wait on for ever.
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		codes, err := chromedp.Run(actx, chromedp.Evaluate[[]int](
			`Promise.all(["/", "/api/status"].map((p) => fetch(p, {credentials: "omit"}).then((r) => r.status)))`, chromedp.EvalAwaitPromise))
		if err != nil || !slices.Equal(codes, []int{401, 401}) {
			t.Fatalf("%s: the page and the API answer %v (%v), want 401 each", what, codes, err)
		}
	}

	// 1. Without credentials, and with wrong ones: refused.
	refused("open the dashboard without credentials")
	do(t, ctx, "send wrong credentials", authorize(user, "guess"))
	refused("open the dashboard with a wrong password")

	// 2. With them: the page loads and its live stream connects.
	do(t, ctx, "send the credentials", authorize(user, password))
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(hs.URL))
	if err != nil || resp.Status != 200 {
		t.Fatalf("open the dashboard with credentials: %v, %+v", err, resp)
	}
	do(t, ctx, "see the stream live", chromedp.WaitVisible(chromedp.Search(`//*[@id="conn" and text()="live"]`)))

	// 3. It renders a workflow, and pause and resume from the page work.
	naps := make([]int, 30)
	wf := e.submit(map[string]any{"id": "dash-auth", "name": "behind basic auth", "steps": []map[string]any{{"id": "n", "type": "nap", "split": 1, "input": naps}}})
	do(t, ctx, "see the workflow", chromedp.WaitVisible(chromedp.Search(`//tr[@data-wf="dash-auth"]/td[contains(., "behind basic auth")]`)))
	// statusIs waits until the workflow's row shows one of statuses.
	statusIs := func(statuses ...string) chromedp.Action[chromedp.Void] {
		var alts []string
		for _, s := range statuses {
			alts = append(alts, fmt.Sprintf("text()=%q", s))
		}
		return chromedp.WaitVisible(chromedp.Search(fmt.Sprintf(`//tr[@data-wf=%q]/td[contains(@class,"status") and (%s)]`, wf, strings.Join(alts, " or "))))
	}
	clickUntil := func(what, action string, statuses ...string) {
		t.Helper()
		for attempt := 1; ; attempt++ { // the table is redrawn every second: a click can miss
			err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-wf=%q] button[data-action=%q]`, wf, action))))
			if err == nil {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = chromedp.Do(actx, statusIs(statuses...))
				cancel()
			}
			if err == nil {
				return
			}
			if attempt == 4 {
				t.Fatalf("%s: the workflow never showed %v: %v", what, statuses, err)
			}
		}
	}
	clickUntil("click pause", "pause", events.WorkflowPaused)
	do(t, ctx, "see the pause confirmed", chromedp.WaitVisible(chromedp.Search(`//p[@id="message" and contains(@class,"ok") and contains(., "pause done")]`)))
	screenshot(t, ctx, "auth-2-paused")
	if st := must(e.cl.Status(e.ctl(), wf))(t); st.Workflows[0].Status != events.WorkflowPaused {
		t.Fatalf("the planner has the workflow %s after the pause from the page", st.Workflows[0].Status)
	}
	// A click has done its part once the workflow runs again (or has
	// already finished); the rest takes as long as the machine needs.
	clickUntil("click resume", "resume", events.WorkflowRunning, events.WorkflowCompleted)
	cctx, cancelDone := context.WithTimeout(ctx, 2*time.Minute)
	if err := chromedp.Do(cctx, statusIs(events.WorkflowCompleted)); err != nil {
		t.Fatalf("resumed, but the page never showed completed: %v", err)
	}
	cancelDone()
	if out := e.final(wf, time.Minute); out.Status != events.OutcomeSuccess || out.Progress.Done != len(naps) {
		t.Errorf("after resume from the page: %s, %d of %d done", out.Status, out.Progress.Done, len(naps))
	}
	screenshot(t, ctx, "auth-3-resumed")
	mu.Lock()
	defer mu.Unlock()
	if len(starts) < len(naps) {
		t.Errorf("%d tasks started, want %d", len(starts), len(naps))
	}
}
