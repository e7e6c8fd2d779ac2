# A torch.autograd.Function emitted by `symcheck backward --emit torch` from the program
#
#     loss = nll_loss(log_softmax(W @ x + b), y)
#
# at the shapes W: float[2, 3], x: float[3], b: float[2], y: int[] (output float[]).
# Its backward is the closed-form gradient with respect to W, x, b that
# symcheck's symbolic engine derived from the program, not a trace of the forward.

import torch
import torch.nn.functional as F


class SoftmaxRegressionLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, W, x, b, y):
        ctx.save_for_backward(W, x, b, y)
        loss = F.nll_loss(torch.log_softmax(W @ x + b, dim=0).unsqueeze(0), y.reshape(1), reduction="mean").reshape(())
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        W, x, b, y = ctx.saved_tensors
        dtype = W.dtype
        # shared by the gradients
        t1 = torch.softmax(W @ x + b, dim=0) - F.one_hot(y, 2).to(dtype)
        grad_W = grad_x = grad_b = None
        if ctx.needs_input_grad[0]:
            # d loss/d W = outer(softmax(W @ x + b) - onehot(y, 2), x)
            grad_W = grad_output * torch.outer(t1, x)
        if ctx.needs_input_grad[1]:
            # d loss/d x = W.T @ (softmax(W @ x + b) - onehot(y, 2))
            grad_x = grad_output * (W.T @ t1)
        if ctx.needs_input_grad[2]:
            # d loss/d b = softmax(W @ x + b) - onehot(y, 2)
            grad_b = grad_output * t1
        return grad_W, grad_x, grad_b, None


def softmax_regression_loss(W, x, b, y):
    """SoftmaxRegressionLoss.apply: the program, its backward the closed form."""
    return SoftmaxRegressionLoss.apply(W, x, b, y)
