package kinesis

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// NewClient returns a Kinesis client configured from the AWS default
// configuration chain, the way the AWS CLI and SDKs are: region from
// AWS_REGION or the shared config file, credentials from the environment,
// shared files, SSO, web identity or the instance role, and the endpoint
// from AWS_ENDPOINT_URL_KINESIS (or AWS_ENDPOINT_URL) when set, as with a
// local Kinesis-compatible server. optFns adjust the loading, for example
// config.WithRegion.
func NewClient(ctx context.Context, optFns ...func(*config.LoadOptions) error) (*awskinesis.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("load aws config: no region: set AWS_REGION or a region in the shared config")
	}
	return awskinesis.NewFromConfig(cfg), nil
}

// withoutSDKRetries turns the SDK's retryer off for one call. PutRecords and
// GetRecords failures are retried by this package's own loops instead, which
// back off with full jitter within the retry budget, count every retry by
// reason, and see every throttle (the SDK's retryer would retry throttles a
// few times underneath, hiding them from the metrics and multiplying
// attempts against a shard that is already over its limit).
func withoutSDKRetries(o *awskinesis.Options) {
	o.Retryer = aws.NopRetryer{}
}

// errorReason names the class of a failed call's error for metric labels.
// The set of values is small and fixed.
func errorReason(err error) string {
	var (
		pte *types.ProvisionedThroughputExceededException
		lee *types.LimitExceededException
		kte *types.KMSThrottlingException
		eie *types.ExpiredIteratorException
		ife *types.InternalFailureException
		rnf *types.ResourceNotFoundException
		api smithy.APIError
	)
	switch {
	case errors.As(err, &pte), errors.As(err, &lee), errors.As(err, &kte):
		return "throttled"
	case errors.As(err, &eie):
		return "expired_iterator"
	case errors.As(err, &ife):
		return "internal"
	case errors.As(err, &rnf):
		return "not_found"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &api):
		return codeReason(api.ErrorCode())
	}
	return "network"
}

// codeReason maps a Kinesis error code to a metric label value.
func codeReason(code string) string {
	switch code {
	case "ProvisionedThroughputExceededException", "LimitExceededException",
		"KMSThrottlingException", "ThrottlingException", "Throttling", "RequestLimitExceeded":
		return "throttled"
	case "InternalFailure", "InternalFailureException", "ServiceUnavailable", "InternalServerError":
		return "internal"
	case "ResourceNotFoundException":
		return "not_found"
	case "AccessDeniedException", "KMSAccessDeniedException", "UnrecognizedClientException":
		return "access_denied"
	case "ValidationException", "InvalidArgumentException", "SerializationException":
		return "invalid"
	}
	if len(code) > 3 && code[:3] == "KMS" {
		return "kms"
	}
	return "other"
}

// permanent reports whether a consumer should stop on err instead of
// retrying: the stream does not exist or the caller may not read it.
func permanent(err error) bool {
	switch errorReason(err) {
	case "not_found", "access_denied", "invalid":
		return true
	}
	return false
}
