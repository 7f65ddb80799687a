"""A function's logs as Lambda writes them: one `EnvironmentLog` per execution environment, called by the Lambda
service at each lifecycle point, in order, from the event loop.

    logs = FunctionLogs(writer, region=..., account_id=..., epoch=...)      # once, by the local cloud
    env_log = logs.environment(FunctionInfo(...), version="1", init_type="on-demand")
    env["AWS_LAMBDA_LOG_GROUP_NAME"], env["AWS_LAMBDA_LOG_STREAM_NAME"] = env_log.group, env_log.stream
    env.update(env_log.config.runtime_variables())                        # AWS_LAMBDA_LOG_FORMAT / _LEVEL
    env_log.init_start(t)                          # INIT begins (before any request for provisioned environments)
    env_log.stdout(chunk, t) / env_log.telemetry(chunk)   # whatever the process writes, as it is read
    env_log.init_report(t, ms, status="error", error_type="Runtime.ImportModuleError")   # only if INIT failed
    env_log.start(t, request_id, trace=...)        # the event is handed to the runtime
    env_log.end(t, Report(...), timeout_s=...)     # the invocation is over: END, REPORT (timeout/exit lines)
    env_log.close(t)                               # the environment is gone: its unterminated output is written

Timestamps are milliseconds since the epoch. Nothing here blocks: events go to the LogWriter.

`take_transcript()` returns what the stream received since the last call (or since `start`), as CloudWatch shows it:
the Invoke API's `LogType=Tail` answer is its last 4 KB, so the tail and the stream can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lambdalab.clock import Clock
from lambdalab.logs import formats
from lambdalab.logs.capture import Captured, FrameDecoder, LineSplitter, application_passes
from lambdalab.logs.writer import LogWriter

DEFAULT_LEVEL = "INFO"  # AWS's default application and system log level for JSON format
TRANSCRIPT_CAP = 64 * 1024  # the transcript keeps its last 64 KB (the Invoke API's tail shows 4 KB)


@dataclass(frozen=True)
class LoggingConfig:
    """A function's `LoggingConfig` (CreateFunction / UpdateFunctionConfiguration / the template)."""

    log_format: str = formats.TEXT
    application_log_level: str | None = None
    system_log_level: str | None = None
    log_group: str | None = None

    @classmethod
    def from_api(cls, value: dict[str, str] | None) -> LoggingConfig:
        """Parse and check `LoggingConfig`; raises ValueError with Lambda's message for an impossible one."""
        value = value or {}
        log_format = value.get("LogFormat", formats.TEXT)
        if log_format not in formats.LOG_FORMATS:
            raise ValueError(
                f"1 validation error detected: Value '{log_format}' at 'loggingConfig.logFormat' failed to satisfy "
                "constraint: Member must satisfy enum value set: [JSON, Text]"
            )
        app, system = value.get("ApplicationLogLevel"), value.get("SystemLogLevel")
        if app is not None and app not in formats.APPLICATION_LEVELS:
            raise ValueError(
                f"1 validation error detected: Value '{app}' at 'loggingConfig.applicationLogLevel' failed to satisfy "
                "constraint: Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]"
            )
        if system is not None and system not in formats.SYSTEM_LEVELS:
            raise ValueError(
                f"1 validation error detected: Value '{system}' at 'loggingConfig.systemLogLevel' failed to satisfy "
                "constraint: Member must satisfy enum value set: [DEBUG, INFO, WARN]"
            )
        if log_format == formats.TEXT and (app is not None or system is not None):
            raise ValueError("Application or system log level can only be set when the log format is JSON.")
        if log_format == formats.JSON:
            app, system = app or DEFAULT_LEVEL, system or DEFAULT_LEVEL
        return cls(log_format, app, system, value.get("LogGroup"))

    def group_for(self, function_name: str) -> str:
        return self.log_group or formats.default_log_group(function_name)

    def to_api(self, function_name: str) -> dict[str, str]:
        """GetFunctionConfiguration's `LoggingConfig`."""
        out = {"LogFormat": self.log_format, "LogGroup": self.group_for(function_name)}
        if self.log_format == formats.JSON:
            out["ApplicationLogLevel"] = self.application_log_level or DEFAULT_LEVEL
            out["SystemLogLevel"] = self.system_log_level or DEFAULT_LEVEL
        return out

    def runtime_variables(self) -> dict[str, str]:
        """What the runtime client reads: awslambdaric formats its records as JSON and sets the root logger's level."""
        if self.log_format != formats.JSON:
            return {}
        return {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": self.application_log_level or DEFAULT_LEVEL}


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    arn: str  # unqualified
    runtime: str  # python3.13
    memory_mb: int
    logging: LoggingConfig = LoggingConfig()


class FunctionLogs:
    """The factory the Lambda service holds: one EnvironmentLog per execution environment."""

    def __init__(self, writer: LogWriter, *, region: str, account_id: str, epoch: Clock) -> None:
        self.writer = writer
        self.epoch = epoch  # the date in a new stream's name
        self.region = region
        self.account_id = account_id

    def environment(
        self,
        function: FunctionInfo,
        *,
        version: str,
        init_type: str,
        now_ms: int | None = None,
        token: str = "",
    ) -> EnvironmentLog:
        config = function.logging
        custom = config.log_group is not None
        stream = formats.stream_name(
            version,
            when=self.epoch.now() if now_ms is None else now_ms / 1000,
            function_name=function.name if custom else None,
            token=token,
        )
        return EnvironmentLog(
            self.writer,
            function,
            group=config.group_for(function.name),
            stream=stream,
            version=version,
            init_type=init_type,
            runtime=formats.Runtime.local(function.runtime, self.region),
        )


class EnvironmentLog:
    """The log stream of one execution environment."""

    def __init__(
        self,
        writer: LogWriter,
        function: FunctionInfo,
        *,
        group: str,
        stream: str,
        version: str,
        init_type: str,
        runtime: formats.Runtime,
    ) -> None:
        self.writer = writer
        self.function = function
        self.config = function.logging
        self.group = group
        self.stream = stream
        self.version = version
        self.init_type = init_type
        self.runtime = runtime
        self._lines = LineSplitter()
        self._frames = FrameDecoder()
        self._json = self.config.log_format == formats.JSON
        self.request_id: str | None = None
        self._transcript: list[str] = []
        self._transcript_size = 0

    def _put(self, events: list[tuple[int, str]], *, emf: bool = False) -> None:
        self.writer.put(self.group, self.stream, events, emf=emf)
        for _, message in events:
            self._transcript.append(message)
            self._transcript_size += len(message)
        while self._transcript_size > TRANSCRIPT_CAP and len(self._transcript) > 1:
            self._transcript_size -= len(self._transcript.pop(0))

    def take_transcript(self) -> str:
        """What this stream received since the last call or `start`, in order (its last 64 KB)."""
        text = "".join(self._transcript)
        self._transcript.clear()
        self._transcript_size = 0
        return text

    # --- what the process writes --------------------------------------------------------------------------------

    def stdout(self, data: bytes, timestamp_ms: int) -> None:
        """A chunk read from the environment's stdout/stderr pipe (at `timestamp_ms`)."""
        self._application(self._lines.feed(data, timestamp_ms))

    def telemetry(self, data: bytes) -> None:
        """A chunk read from the ``_LAMBDA_TELEMETRY_LOG_FD`` pipe: awslambdaric's frames, each stamped by itself."""
        self._application(self._frames.feed(data))

    def _application(self, events: Iterable[Captured]) -> None:
        kept = [
            (e.timestamp_ms, e.message)
            for e in events
            if application_passes(e, self.config.log_format, self.config.application_log_level)
        ]
        if kept:
            self._put(kept, emf=True)

    def _flush_output(self) -> None:
        self._application(self._lines.flush())

    # --- platform records ---------------------------------------------------------------------------------------

    def _platform(self, timestamp_ms: int, text: str | None, json_text: str | None, level: str = "INFO") -> None:
        if self._json:
            if json_text is not None and formats.passes(level, self.config.system_log_level):
                self._put([(timestamp_ms, json_text)])
        elif text is not None:
            self._put([(timestamp_ms, text)])

    def init_start(self, timestamp_ms: int, *, phase: str = "init") -> None:
        self._platform(
            timestamp_ms,
            formats.init_start_text(self.runtime),
            formats.init_start_json(
                timestamp_ms,
                self.runtime,
                init_type=self.init_type,
                function_name=self.function.name,
                version=self.version,
                instance_id=self.stream,
                memory_mb=self.function.memory_mb,
                phase=phase,
            ),
        )

    def init_report(
        self, timestamp_ms: int, duration_ms: float, *, status: str, error_type: str | None = None, phase: str = "init"
    ) -> None:
        """INIT ended. Text format writes INIT_REPORT only for a failed or timed-out INIT, as Lambda does."""
        self._flush_output()
        text = None if status == "success" else formats.init_report_text(duration_ms, phase, status, error_type)
        record = formats.init_report_json(
            timestamp_ms, duration_ms, init_type=self.init_type, phase=phase, status=status, error_type=error_type
        )
        self._platform(timestamp_ms, text, record, formats.system_level("platform.initReport", status))

    def start(self, timestamp_ms: int, request_id: str, *, trace: formats.Trace | None = None) -> None:
        self._flush_output()  # INIT's last unterminated words belong before START
        self.take_transcript()  # what came before (INIT, idle output) is not this invocation's
        self.request_id = request_id
        self._platform(
            timestamp_ms,
            formats.start_text(request_id, self.version),
            formats.start_json(timestamp_ms, request_id, self.function.arn, self.version, trace),
        )

    def end(
        self,
        timestamp_ms: int,
        report: formats.Report,
        *,
        timeout_s: float | None = None,
        exit_reason: str | None = None,
    ) -> None:
        """The invocation is over. `timeout_s`: it timed out after that many seconds (report.status "timeout");
        `exit_reason`: the runtime exited ("exit status 1", "signal: killed") and report.error_type says how."""
        self._flush_output()
        request_id = report.request_id
        if exit_reason is not None and not self._json:
            error_type = report.error_type or "Runtime.ExitError"
            message = f"RequestId: {request_id} Error: Runtime exited with error: {exit_reason}\n{error_type}\n"
            self._put([(timestamp_ms, message)])
        self._platform(timestamp_ms, formats.end_text(request_id), None)
        self._platform(
            timestamp_ms,
            None,
            formats.runtime_done_json(timestamp_ms, request_id, report.status, report.duration_ms),
            "DEBUG",
        )
        self._platform(
            timestamp_ms,
            formats.report_text(report),
            formats.report_json(timestamp_ms, report),
            formats.system_level("platform.report", report.status),
        )
        if timeout_s is not None and not self._json:
            line = formats.timeout_text(timestamp_ms, request_id, timeout_s)
            self._put([(timestamp_ms, line)])
        self.request_id = None

    def close(self, timestamp_ms: int) -> None:
        """The environment is gone (reaped, killed, crashed): whatever it wrote without a newline is still written."""
        del timestamp_ms
        self._flush_output()
        self._application(self._frames.flush())
