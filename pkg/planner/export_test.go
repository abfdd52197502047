package planner

// Exported is s without what only the package reads (inputs, keys).
func (s StepPlan) Exported() StepPlan {
	s.inputs, s.keys = nil, nil
	return s
}
