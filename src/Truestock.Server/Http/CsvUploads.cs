using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.Net.Http.Headers;
using Microsoft.OpenApi;

namespace Truestock.Server.Http;

/// <summary>Why a declared Content-Type does not fit a CSV upload.</summary>
internal enum CsvMediaTypeFault
{
    /// <summary>The media type is not one a CSV file is sent as (or does not parse).</summary>
    NotCsv,

    /// <summary>The media type fits, but the charset is neither UTF-8 nor US-ASCII.</summary>
    NotUtf8,
}

/// <summary>
/// What the endpoints that take a streamed CSV body share (imports and reconciliation snapshots): which content types
/// they accept, how they lift Kestrel's body limit above their own, and how they declare the body in the OpenAPI
/// document. The answers (problem texts) stay with each endpoint, because they name its own limits and routes.
/// </summary>
internal static class CsvUploads
{
    private static readonly string[] MediaTypes = ["text/csv", "application/csv", "text/plain", "application/octet-stream"];

    /// <summary>
    /// Checks a declared Content-Type: null when it fits (not declared, or CSV, plain text or an octet stream in UTF-8
    /// or US-ASCII), otherwise the fault and the declared charset (empty when there is none).
    /// </summary>
    public static CsvMediaTypeFault? CheckMediaType(string? contentType, out string charset)
    {
        charset = "";
        if (string.IsNullOrEmpty(contentType))
        {
            return null;
        }
        if (!MediaTypeHeaderValue.TryParse(contentType, out var media)
            || !MediaTypes.Contains(media.MediaType.Value, StringComparer.OrdinalIgnoreCase))
        {
            return CsvMediaTypeFault.NotCsv;
        }
        if (media.Charset.HasValue && !media.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            && !media.Charset.Equals("us-ascii", StringComparison.OrdinalIgnoreCase))
        {
            charset = media.Charset.Value ?? "";
            return CsvMediaTypeFault.NotUtf8;
        }
        return null;
    }

    /// <summary>
    /// Raises Kestrel's request body limit a megabyte above <paramref name="bytesMax"/>. The upload counts bytes itself
    /// to answer problem+json, so Kestrel's limit is only a backstop above it.
    /// </summary>
    public static void RaiseBodyLimit(HttpContext http, long bytesMax)
    {
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = bytesMax + 1024 * 1024;
        }
    }

    /// <summary>
    /// An OpenAPI operation transformer that declares the CSV request body with <paramref name="description"/>: the
    /// handlers read the body as a stream, so nothing infers it.
    /// </summary>
    public static Func<OpenApiOperation, OpenApiOperationTransformerContext, CancellationToken, Task> RequestBody(string description) =>
        (operation, _, _) =>
        {
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Description = description,
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    ["text/csv"] = new() { Schema = new OpenApiSchema { Type = JsonSchemaType.String } },
                },
            };
            return Task.CompletedTask;
        };
}
