import Testing

@testable import MediaService

/// ``CloudinaryStore/signature(_:secret:)`` against Cloudinary's own worked example, so the
/// signing does not only agree with the test stand-in's reading of the rules.
@Suite("Cloudinary signatures")
struct CloudinarySignatureTests {
    @Test("Cloudinary's documented example: parameters sorted, joined with &, the secret appended, SHA-1")
    func documentedExample() {
        let parameters = [
            "eager": "w_400,h_300,c_pad|w_260,h_200,c_crop", "public_id": "sample_image", "timestamp": "1315060510",
        ]
        #expect(CloudinaryStore.signature(parameters, secret: "abcd") == "bfd09f95f331f558cbd1320e67aa8d488770583e")
    }

    @Test("file, api_key, resource_type, cloud_name and empty values are not signed")
    func excludedParameters() {
        let signed = CloudinaryStore.signature(["public_id": "a", "timestamp": "1"], secret: "s")
        let withExcluded = CloudinaryStore.signature(
            [
                "public_id": "a", "timestamp": "1", "file": "x", "api_key": "k", "resource_type": "raw",
                "cloud_name": "c", "folder": "",
            ], secret: "s")
        #expect(signed == withExcluded)
    }
}
