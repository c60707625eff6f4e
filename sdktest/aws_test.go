package sdktest

import (
	"context"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/resilient-go/resilient/resilienttest"
)

// dynamoClient talks to u through rt with the SDK's standard retryer of
// attempts attempts (DynamoDB's default is 4) without its waits, so tests
// stay fast. The AWS SDK's is the retry layer to keep: smithy-go builds
// each request with a body but no GetBody, so our Retry cannot re-send any
// DynamoDB call (they are all POSTs with a JSON body).
func dynamoClient(u string, rt http.RoundTripper, attempts int) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(u),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:   &http.Client{Transport: rt},
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
}

// dynamoNoRetry switches the SDK's retries off (aws.NopRetryer).
func dynamoNoRetry(u string, rt http.RoundTripper) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(u),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:   &http.Client{Transport: rt},
		Retryer:      aws.NopRetryer{},
	})
}

func dynamoPut(ctx context.Context, c *dynamodb.Client) error {
	_, err := c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String("t"),
		Item:      map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "1"}},
	})
	return err
}

func awsSDK() sdk {
	return sdk{
		name: "aws-sdk-go-v2",
		// The SDK's own key for its attempts of one call; ours changes,
		// as each SDK attempt is a new call to the pipeline.
		ownKey:     "Amz-Sdk-Invocation-Id",
		sdkRetries: true,
		write: func(ctx context.Context, u string, rt http.RoundTripper) error {
			return dynamoPut(ctx, dynamoClient(u, rt, 3))
		},
		ok: []resilienttest.Fault{
			resilienttest.Header("Content-Type", "application/x-amz-json-1.0"),
			resilienttest.Respond(http.StatusOK, `{}`),
		},
	}
}
