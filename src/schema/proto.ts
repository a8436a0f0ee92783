/**
 * core.schema.proto: a protobuf definition stored for grpc-transcode, as
 * APISIX keeps it. `content` is .proto text or a base64 FileDescriptorSet;
 * protos.ts (the admin check) parses it beyond this schema.
 */
import type { JsonSchema } from './types.js';
import { descDef, idSchema, timestampDef } from './defs.js';

export const protoSchema: JsonSchema = {
  type: 'object',
  properties: {
    id: idSchema,
    desc: descDef,
    content: { type: 'string', minLength: 1, maxLength: 1024 * 1024 },
    create_time: timestampDef,
    update_time: timestampDef,
  },
  required: ['content'],
  additionalProperties: false,
};
