package events

// Headers every baton message may carry. Workflow and task ids travel in
// headers as well as in the body, so tools can route and filter without
// decoding payloads.
const (
	HeaderWorkflow = "Baton-Workflow"
	// HeaderResultsThrough, on a partial output, is the RESULTS sequence
	// through which partials are stored: a restarted aggregator carries on
	// after it, so the partial stream holds each result once.
	HeaderResultsThrough = "Baton-Results-Through"
	// HeaderReopened, on a final output, is the workflow's Reopened when
	// it was built: a finished workflow whose failed tasks are retried
	// gets a new final output, with a higher one.
	HeaderReopened    = "Baton-Reopened"
	HeaderTask        = "Baton-Task"
	HeaderReplyTo     = "Baton-Reply-To" // on a job: where to send the SubmitReply
	HeaderContentType = "Content-Type"
	HeaderMsgID       = "Nats-Msg-Id" // JetStream de-duplication

	// On a reply that lists a page of a long list (agents): how many
	// entries match the request, and how many of them the reply leaves
	// out (see ListPage).
	HeaderTotal   = "Baton-Total"
	HeaderOmitted = "Baton-Omitted"

	ContentJSON    = "application/json"
	ContentMsgpack = "application/msgpack"
)
