/**
 * What every logger's conf shares (apisix/utils/log-util.lua and the loggers'
 * schemas): `log_format` / `log_format_extra`, the `include_*_body` switches
 * with their expressions and size limits, compiled once per config change.
 */
import { compileExpr, type CompiledExpr } from '../../core/plugin/index.js';
import { compileLogFormat, type CompiledFormat } from './log-format.js';
import { measureForLogs } from './log-measures.js';

/** APISIX's MAX_REQ_BODY / MAX_RESP_BODY: 512 KiB. */
export const MAX_BODY_BYTES = 524288;

const exprList = { type: 'array', minItems: 1, items: { type: 'array' } };

/** The schema properties the loggers share, as APISIX writes them in each logger. */
export const logSchemaProperties: Record<string, Record<string, unknown>> = {
  log_format: { type: 'object' },
  log_format_extra: { type: 'object' },
  include_req_body: { type: 'boolean', default: false },
  include_req_body_expr: exprList,
  include_resp_body: { type: 'boolean', default: false },
  include_resp_body_expr: exprList,
  max_req_body_bytes: { type: 'integer', minimum: 1, default: MAX_BODY_BYTES },
  max_resp_body_bytes: { type: 'integer', minimum: 1, default: MAX_BODY_BYTES },
};

/** The metadata schema properties the loggers share. */
export const logMetadataProperties: Record<string, Record<string, unknown>> = {
  log_format: { type: 'object' },
  log_format_extra: { type: 'object' },
};

export interface LogConf {
  log_format?: Record<string, unknown>;
  log_format_extra?: Record<string, unknown>;
  include_req_body: boolean;
  include_req_body_expr?: unknown[];
  include_resp_body: boolean;
  include_resp_body_expr?: unknown[];
  max_req_body_bytes: number;
  max_resp_body_bytes: number;
}

export interface LogMetadata {
  log_format?: Record<string, unknown>;
  log_format_extra?: Record<string, unknown>;
}

/** A logger conf's compiled parts. */
export interface CompiledLog {
  readonly format: CompiledFormat | undefined;
  readonly extra: CompiledFormat | undefined;
  readonly reqBodyWhen: CompiledExpr | undefined;
  readonly respBodyWhen: CompiledExpr | undefined;
}

/** log-util's check_log_schema: the expressions must compile. Returns an error message or undefined. */
export function checkLogConf(conf: LogConf): string | undefined {
  for (const key of ['include_req_body_expr', 'include_resp_body_expr'] as const) {
    const expr = conf[key];
    if (expr === undefined) continue;
    try {
      compileExpr(expr);
    } catch (err) {
      return `failed to validate the '${key}' expression: ${(err as Error).message}`;
    }
  }
  return undefined;
}

export function compileLogConf(conf: LogConf): CompiledLog {
  measureForLogs();
  return {
    format: conf.log_format === undefined ? undefined : compileLogFormat(conf.log_format),
    extra: conf.log_format_extra === undefined ? undefined : compileLogFormat(conf.log_format_extra),
    reqBodyWhen: conf.include_req_body_expr === undefined ? undefined : compileExpr(conf.include_req_body_expr),
    respBodyWhen: conf.include_resp_body_expr === undefined ? undefined : compileExpr(conf.include_resp_body_expr),
  };
}
