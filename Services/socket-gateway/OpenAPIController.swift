import Foundation
import Hummingbird

/// Serves the OpenAPI 3.1 document of every REST route (kept in the repository beside this
/// file, `Resources/openapi.json`) at `/api/openapi.json`.
struct OpenAPIController {
    let document: Data

    init() throws {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json") else {
            throw CocoaError(.fileNoSuchFile)
        }
        self.document = try Data(contentsOf: url)
    }

    func addRoutes(to router: Router<GatewayRequestContext>) {
        router.get("api/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: self.document)))
        }
    }
}
