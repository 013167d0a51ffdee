import { create, createRegistry, fromBinary, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "./gen/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.ts";

// gRPC server reflection (v1, and v1alpha for older grpcurl builds), answered from the
// descriptors the generated code embeds, so `grpcurl -plaintext host:port list` works.

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

function withDependencies(file: DescFile, into: Map<string, DescFile>): Map<string, DescFile> {
  if (into.has(file.name)) return into;
  // Dependencies first, so a client can build its pool in the order we send.
  for (const dependency of file.dependencies) withDependencies(dependency, into);
  into.set(file.name, file);
  return into;
}

function encodeFiles(file: DescFile): Uint8Array[] {
  return [...withDependencies(file, new Map()).values()].map((each) => toBinary(FileDescriptorProtoSchema, each.proto));
}

function answer(request: v1.ServerReflectionRequest, services: DescService[]): v1.ServerReflectionResponse {
  const respond = (messageResponse: v1.ServerReflectionResponse["messageResponse"]) =>
    create(v1.ServerReflectionResponseSchema, { validHost: request.host, originalRequest: request, messageResponse });
  const error = (errorCode: number, errorMessage: string) =>
    respond({ case: "errorResponse", value: create(v1.ErrorResponseSchema, { errorCode, errorMessage }) });
  const files = (file: DescFile | undefined, what: string) =>
    file
      ? respond({
          case: "fileDescriptorResponse",
          value: create(v1.FileDescriptorResponseSchema, { fileDescriptorProto: encodeFiles(file) }),
        })
      : error(NOT_FOUND, `${what} not found`);

  const message = request.messageRequest;
  switch (message.case) {
    case "listServices":
      return respond({
        case: "listServicesResponse",
        value: create(v1.ListServiceResponseSchema, { service: services.map((service) => ({ name: service.typeName })) }),
      });
    case "fileByFilename": {
      const known = new Map<string, DescFile>();
      for (const service of services) withDependencies(service.file, known);
      return files(known.get(message.value), `file ${message.value}`);
    }
    case "fileContainingSymbol": {
      const registry = createRegistry(...new Set(services.map((service) => service.file)));
      // A symbol may name a method or field ("pkg.Service.Method"): fall back to its parent.
      const symbol = message.value;
      const parent = symbol.slice(0, Math.max(symbol.lastIndexOf("."), 0));
      const descriptor = registry.get(symbol) ?? registry.get(parent);
      return files(descriptor?.file, `symbol ${symbol}`);
    }
    case "fileContainingExtension":
    case "allExtensionNumbersOfType":
      return error(UNIMPLEMENTED, "extensions are not used by Cutline's services");
    default:
      return error(UNIMPLEMENTED, "empty reflection request");
  }
}

/** Registers both reflection versions, listing every service on the router (reflection included). */
export function registerReflection(router: ConnectRouter): void {
  const services = () => [...new Map(router.handlers.map((handler) => [handler.service.typeName, handler.service])).values()];
  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) yield answer(request, services());
    },
  });
  // v1alpha is wire-identical to v1, so its messages are converted through their bytes.
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        const asV1 = fromBinary(v1.ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, request));
        const response = answer(asV1, services());
        yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(v1.ServerReflectionResponseSchema, response));
      }
    },
  });
}
