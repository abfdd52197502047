package agent

import "sync"

// pool runs tasks on goroutines that outlive them: a task's goroutine
// starts with a grown stack and no creation cost. It keeps at most as many
// workers as tasks ever ran at once; stop ends them.
type pool struct {
	work chan func()
	quit chan struct{}
	wg   sync.WaitGroup
}

func newPool() *pool { return &pool{work: make(chan func()), quit: make(chan struct{})} }

// run hands f to an idle worker, or starts one.
func (p *pool) run(f func()) {
	select {
	case p.work <- f:
	default:
		p.wg.Go(func() {
			f()
			for {
				select {
				case f := <-p.work:
					f()
				case <-p.quit:
					return
				}
			}
		})
	}
}

// stop ends the workers once their tasks return; run must not be called after.
func (p *pool) stop() {
	close(p.quit)
	p.wg.Wait()
}
