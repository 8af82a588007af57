//! Log lines on stderr: human-readable, or JSON with the trace context.
//!
//! `RUST_LOG` filters the logs only (default `info,rmcp=warn`); it never changes which
//! spans are exported. In JSON, every line written inside a traced span
//! carries `trace_id` and `span_id` (lowercase hex, as in `traceparent`), so
//! a log search and a trace lead to each other.

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use tracing::Subscriber;
use tracing::dispatcher::WeakDispatch;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, layer::Context};

use crate::{LogArgs, LogFormat};

/// The filter when `RUST_LOG` is not set: `info`, except rmcp's own info
/// lines, which in stateless mode come once per request ("Service
/// initialized as server …") and would cost more than the request.
const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// The target of the one line per call (`--log-calls`): a per-call line
/// costs a formatted write on every call, so it is opt-in, like the
/// statement log of PostgreSQL itself.
pub const CALLS: &str = "pgmcp::calls";

/// The logging layer for `format`, filtered by `RUST_LOG`.
/// `--log-calls` turns the per-call lines ([`CALLS`]) on; whatever
/// `RUST_LOG` says, they are off without it.
pub(crate) fn layer<S>(args: &LogArgs) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let calls = if args.log_calls { "debug" } else { "off" };
    let filter = match format!("{CALLS}={calls}").parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => {
            let dispatch = Arc::new(OnceLock::<WeakDispatch>::new());
            let seen = dispatch.clone();
            let mut json = json_subscriber::fmt::layer().with_writer(std::io::stderr);
            json.inner_layer_mut()
                .add_multiple_dynamic_fields(move |event, ctx, writer| {
                    let Some(dispatch) = seen.get().and_then(WeakDispatch::upgrade) else {
                        return;
                    };
                    if let Some((trace_id, span_id)) = ids(event, ctx, &dispatch) {
                        let _ = writer.write_field("trace_id", trace_id);
                        let _ = writer.write_field("span_id", span_id);
                    }
                });
            json.with_filter(filter)
                .and_then(RememberDispatch(dispatch))
                .boxed()
        }
    }
}

/// Trace and span id of the innermost traced span around `event`.
fn ids<S>(
    event: &tracing::Event<'_>,
    ctx: &Context<'_, S>,
    dispatch: &tracing::Dispatch,
) -> Option<(String, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = ctx.event_span(event)?;
    for s in span.scope() {
        if let Some(cx) = tracing_opentelemetry::get_otel_context(&s.id(), dispatch) {
            let span = cx.span();
            let sc = span.span_context();
            return sc
                .is_valid()
                .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()));
        }
    }
    None
}

/// Keeps a handle on the subscriber it is registered with: the JSON
/// formatter needs it to ask the OpenTelemetry layer for a span's ids while
/// an event is being dispatched (when the "current" dispatcher is not
/// available).
struct RememberDispatch(Arc<OnceLock<WeakDispatch>>);

impl<S: Subscriber> Layer<S> for RememberDispatch {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}
