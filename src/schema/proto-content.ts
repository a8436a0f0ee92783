/**
 * The check APISIX's protos admin module runs beyond the schema
 * (grpc-transcode's compile_proto): `content` must be .proto text, or else a
 * base64-encoded FileDescriptorSet (what `protoc --descriptor_set_out`
 * writes). protobufjs is loaded on the first proto written, not at start-up.
 * Imports are not resolved, so a definition that imports well-known types
 * is accepted as written.
 */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** undefined when `content` parses; otherwise APISIX's `invalid content: ...` message. */
export async function checkProtoContent(content: string): Promise<string | undefined> {
  const { default: protobuf } = await import('protobufjs');
  let textError: string;
  try {
    protobuf.parse(content, { keepCase: true });
    return undefined;
  } catch (err) {
    textError = (err as Error).message;
  }
  const compact = content.replace(/\s+/g, '');
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) return `invalid content: ${textError}`;
  // CommonJS that replaces module.exports: its types are on the default export.
  const { FileDescriptorSet } = (await import('protobufjs/ext/descriptor/index.js')).default;
  try {
    const set = FileDescriptorSet.decode(Buffer.from(compact, 'base64')) as unknown as { file?: unknown[] };
    if (!set.file || set.file.length === 0) return 'invalid content: a descriptor set with no file';
    // The descriptor extension adds Root.fromDescriptor at runtime; its typings do not declare it.
    (protobuf.Root as unknown as { fromDescriptor(set: unknown): unknown }).fromDescriptor(set);
    return undefined;
  } catch (err) {
    return `invalid content: not a .proto definition (${textError}) nor a FileDescriptorSet (${(err as Error).message})`;
  }
}
